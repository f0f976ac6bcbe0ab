"""The Wav2Lip-family engine: a generator repaints a 96 px lower face from a mel window.

This is lipdub's first engine, kept for users' own Wav2Lip checkpoints (``--checkpoint
wav2lip_gan.pth``), the bundled compact generator and generator profiles. Per output frame: crop
the face as Wav2Lip does, generate the lower half from the 0.2 s mel window, match its colours to
the frame inside a feathered landmark mask, and paste it back under that mask.
"""

from __future__ import annotations

import numpy as np

from lipdub.engines.base import FrameJob, RenderPlan


class GeneratorEngine:
    """`lipdub.engines.base.Engine` around a `lipdub.models.registry.Generator`."""

    name = "generator"

    def __init__(self, generator, pads=(0, 10, 0, 0), feather: float = 0.08, color_match: bool = True,
                 reference: str = "self", batch_size: int = 16):
        self.generator = generator
        self.spec = generator.spec
        self.sample_rate = self.spec.mel.sample_rate
        self.pads = pads
        self.feather = feather
        self.color_match = color_match
        self.reference = reference
        self.batch_size = batch_size
        self.model_name = self.spec.name
        self._mel: np.ndarray | None = None
        self._fps = 25.0
        self._first_reference: np.ndarray | None = None

    def observe(self, index: int, image: np.ndarray, face) -> None:
        """Nothing to remember: the generator works frame by frame."""

    def prepare(self, plan: RenderPlan) -> None:
        from lipdub.media.features import melspectrogram

        self._mel = melspectrogram(plan.speech, self.spec.mel)
        self._fps = plan.fps

    def render(self, jobs: list[FrameJob]) -> list[np.ndarray]:
        from lipdub.face.align import crop_region, extract_crop
        from lipdub.face.blend import blend_face, lower_face_mask, match_colors
        from lipdub.media.features import mel_windows

        out = [job.image for job in jobs]
        with_face = [(k, job) for k, job in enumerate(jobs) if job.face is not None]
        if not with_face:
            return out
        crops, masks = [], []
        for _, job in with_face:
            region = crop_region(job.face.box, job.image.shape[:2], self.pads)
            crop = extract_crop(job.image, region, self.spec.img_size)
            crops.append(crop)
            masks.append(lower_face_mask(job.face.landmarks, crop, self.feather))
        images = np.stack([crop.image for crop in crops])
        windows = mel_windows(self._mel, [job.index for _, job in with_face], self._fps, self.spec.mel)
        references = images
        if self.reference == "first":
            if self._first_reference is None:
                self._first_reference = images[0]
            references = np.broadcast_to(self._first_reference, images.shape)
        mouths = self.generator.generate(windows, images, references)
        for (k, job), crop, mask, mouth in zip(with_face, crops, masks, mouths):
            if self.color_match:
                mouth = match_colors(mouth, crop.image, mask)
            out[k] = blend_face(job.image, mouth, crop, mask)
        return out

    def close(self) -> None:
        """Nothing held."""
