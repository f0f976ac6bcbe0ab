"""Lip-sync engines: swappable components that turn tracked frames + speech into new frames.

``build_engine`` resolves a `lipdub.pipeline.SyncOptions` to one engine by name, as diffusers
resolves a scheduler; the pipeline never branches on which one it got (`lipdub.engines.base`).

- ``motion`` (default): `lipdub.engines.motion.MotionEngine`, predicted lip motion rendered by
  warping the speaker's own pixels;
- ``generator``: `lipdub.engines.generator.GeneratorEngine`, a Wav2Lip-compatible generator
  (the bundled compact model, ``--checkpoint wav2lip_gan.pth`` or a generator profile).
"""

from __future__ import annotations

from lipdub.errors import LipdubError

ENGINES = ("motion", "generator")
DEFAULT_ENGINE = "motion"


def engine_name(options) -> str:
    """The engine ``options`` ask for: explicit, else generator when a generator was named."""
    if options.engine is not None:
        if options.engine not in ENGINES:
            raise LipdubError(f"unknown engine {options.engine!r}; choose from {', '.join(ENGINES)}")
        return options.engine
    if any(value is not None for value in (options.model, options.checkpoint, options.profile)):
        return "generator"
    return DEFAULT_ENGINE


def build_engine(options):
    """A ready engine for one sync run (see the module docstring)."""
    name = engine_name(options)
    if name == "generator":
        from lipdub.engines.generator import GeneratorEngine
        from lipdub.models.registry import resolve_generator

        generator = resolve_generator(options.model, options.checkpoint, options.profile)
        return GeneratorEngine(generator, pads=options.pads, feather=options.feather,
                               color_match=options.color_match, reference=options.reference,
                               batch_size=options.batch_size)
    if any(value is not None for value in (options.model, options.checkpoint, options.profile)):
        raise LipdubError("--model, --checkpoint and --profile choose a generator: use them with --engine generator")
    from lipdub.engines.motion import MotionEngineOptions, load_engine

    exclude = 1.0 if options.reference == "first" else None
    return load_engine(options.motion_model, MotionEngineOptions(
        color_match=options.color_match, exclude_seconds=exclude, batch_size=options.batch_size))
