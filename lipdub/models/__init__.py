"""Networks (one file each), checkpoint I/O and the registry that picks the generator.

The pipeline needs only :func:`resolve_generator` and the :class:`Generator` it returns; the
network modules are plain ``nn.Module``s with no I/O, used directly by training and evaluation.
"""
