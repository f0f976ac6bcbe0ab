"""Lip-sync engines: swappable components that turn tracked frames + speech into new frames.

``build_engine`` resolves a `lipdub.pipeline.SyncOptions` to one engine by name, as diffusers
resolves a scheduler; the pipeline never branches on which one it got (`lipdub.engines.base`).

- ``motion`` (default): `lipdub.engines.motion.MotionEngine`, predicted lip motion rendered by
  warping the speaker's own pixels (with a motion profile: its fine-tuned model and its mouths);
- ``generator``: `lipdub.engines.generator.GeneratorEngine`, a Wav2Lip-compatible generator
  (the bundled compact model, ``--checkpoint wav2lip_gan.pth`` or a generator profile).
"""

from __future__ import annotations

from pathlib import Path

from lipdub.errors import LipdubError

ENGINES = ("motion", "generator")
DEFAULT_ENGINE = "motion"


def profile_engine(profile) -> str:
    """Which engine a profile folder (``lipdub personalize``) was made for: its profile.json says."""
    import json

    path = Path(profile) / "profile.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LipdubError(f"{path} not found: not a lipdub profile") from None
    except (OSError, ValueError) as error:
        raise LipdubError(f"cannot read {path}: {error}") from None
    return data.get("engine", "generator") if isinstance(data, dict) else "generator"


def engine_name(options) -> str:
    """The engine ``options`` ask for: explicit, else the profile's, else generator when a
    generator was named, else the default."""
    if options.engine is not None:
        if options.engine not in ENGINES:
            raise LipdubError(f"unknown engine {options.engine!r}; choose from {', '.join(ENGINES)}")
        return options.engine
    if options.profile is not None:
        return profile_engine(options.profile)
    if options.model is not None or options.checkpoint is not None:
        return "generator"
    return DEFAULT_ENGINE


def build_engine(options):
    """A ready engine for one sync run (see the module docstring)."""
    name = engine_name(options)
    if name == "generator":
        from lipdub.engines.generator import GeneratorEngine
        from lipdub.models.registry import resolve_generator

        if options.profile is not None and profile_engine(options.profile) == "motion":
            raise LipdubError(f"{options.profile} is a motion profile: use it with the motion engine (the default)")

        if getattr(options, "articulation", 1.0) != 1.0:
            raise LipdubError("articulation applies to the motion engine (the default), not to a generator")
        generator = resolve_generator(options.model, options.checkpoint, options.profile)
        return GeneratorEngine(generator, pads=options.pads, feather=options.feather,
                               color_match=options.color_match, reference=options.reference,
                               batch_size=options.batch_size)
    if options.model is not None or options.checkpoint is not None:
        raise LipdubError("--model and --checkpoint choose a generator: use them with --engine generator")
    from lipdub.engines.motion import MotionEngineOptions, load_engine

    motion_model = options.motion_model
    bank = None
    if options.profile is not None:
        from lipdub.render.profile_bank import profile_bank

        if profile_engine(options.profile) != "motion":
            raise LipdubError(f"{options.profile} is a generator profile: use it with --engine generator")
        if motion_model is not None:
            raise LipdubError("choose --profile or --motion-model, not both")
        motion_model = Path(options.profile) / "motion.pt"
        bank = profile_bank(options.profile)  # None for a profile made before mouth banks
    exclude = 1.0 if options.reference == "first" else None
    engine = load_engine(motion_model, MotionEngineOptions(
        color_match=options.color_match, exclude_seconds=exclude, batch_size=options.batch_size,
        interior=getattr(options, "interior", "painted"), render_threads=getattr(options, "render_threads", 2),
        keep_hands=getattr(options, "keep_hands", True), articulation=getattr(options, "articulation", 1.0)), bank)
    if options.profile is not None:
        engine.model_name = f"profile {Path(options.profile).name}"
    return engine
