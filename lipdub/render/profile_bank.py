"""A personalisation profile's mouth bank: a few dozen real open mouths of one speaker, on disk.

Why a profile carries mouths: the motion engine borrows the mouth opening (teeth, tongue, cavity)
from a frame whose lips are already open like the target (`lipdub.render.bank`). A video that
never opens wide, and a photo above all, has no such frame, and the opening is painted
(`lipdub.render.interior`). A profile made from a video of the same speaker
(``lipdub personalize``) keeps that speaker's real mouths, so they can be borrowed by *another*
video or a photo of them. Only openings are ever borrowed, so each entry is the lips and a small
margin, not the lower face: a bank of 96 mouths is a megabyte or two.

Why canonical points: the points that say where each crop's lips are must be comparable with
another video's, whatever the head's size and position there. Each entry keeps its 468 Face Mesh
points in the head-centred canonical frame (`lipdub.motion.shape`: eye units, eyes level) plus the
affine that maps them onto its crop's pixels, so retrieval reads the canonical shape and pose and
the renderer gets pixel points back exactly.

File format (`BANK_FILE` inside the profile folder; a plain ``.npz``, no pickles):

- ``jpeg`` uint8 (total,): every crop's JPEG bytes, one after another; ``offsets`` int64 (N + 1,);
- ``canonical`` float32 (N, 468, 2); ``to_crop`` float64 (N, 2, 3): canonical -> crop pixels;
- ``frames`` int64 (N,): the frame number of each entry in the video it came from;
- ``rest`` float32 (N, P, 2): each entry's rest shape (the closed mouth of its moment,
  `lipdub.motion.shape.rest_track`), canonical motion points: its shape minus this is its speech
  motion, which is what another face's target is compared with;
- ``pose_centre`` float32 (D,): the median head-pose features of that video
  (`lipdub.render.bank.pose_features`), so poses are compared as offsets from it;
- ``fps`` float64 (), ``version`` int64 ().
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lipdub.errors import LipdubError

BANK_FILE = "mouth_bank.npz"
BANK_VERSION = 1
#: JPEG quality of the stored crops, with full-resolution colour (no 4:2:0 subsampling: in a
#: mouth 50 pixels wide it would bleed the lips' red into the teeth): a crop is ~2-20 KB.
JPEG_QUALITY = 95


@dataclass(frozen=True)
class ProfileBank:
    """The mouths a profile carries (see the module docstring for the fields)."""

    crops: tuple[np.ndarray, ...]  # (h, w, 3) uint8 RGB each
    canonical: np.ndarray  # (N, 468, 2)
    to_crop: np.ndarray  # (N, 2, 3)
    frames: np.ndarray  # (N,)
    rest: np.ndarray  # (N, P, 2)
    pose_centre: np.ndarray  # (D,)
    fps: float

    def __len__(self) -> int:
        return len(self.crops)

    def points(self) -> np.ndarray:
        """(N, 468, 2) every entry's Face Mesh points in its crop's pixels."""
        from lipdub.motion.shape import apply_affine

        return apply_affine(np.asarray(self.to_crop, np.float64), np.asarray(self.canonical, np.float64))

    def rest_as(self, kind: str) -> np.ndarray:
        """(N, P, 2) every entry's rest shape of kind ``kind`` (`lipdub.motion.shape.REST_KINDS`).

        Why: a profile stores the envelope (`rest_track`), and the input it is used with measures its
        own rest as its motion model was trained (closed for current models). An entry's opening is
        judged against its rest, so the two must be of one kind; the closed rest is a function of the
        envelope (`video_rest`), so old profiles need no new field.
        """
        from lipdub.motion.shape import REST_KINDS, closed_mouth

        if kind not in REST_KINDS:
            raise ValueError(f"rest must be one of {', '.join(REST_KINDS)}, not {kind!r}")
        rest = np.asarray(self.rest, np.float64)
        return closed_mouth(rest) if kind == "closed" else rest

    def shapes(self) -> np.ndarray:
        """(N, P, 2) canonical motion points (`lipdub.motion.shape.MOTION_POINTS`)."""
        from lipdub.motion.shape import MOTION_POINTS

        return np.asarray(self.canonical, np.float64)[:, list(MOTION_POINTS)]


def encode_bank(bank: ProfileBank, quality: int = JPEG_QUALITY) -> bytes:
    """The ``.npz`` bytes of ``bank`` (crops JPEG-compressed)."""
    blobs = []
    for crop in bank.crops:
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(crop, np.uint8), cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                                 cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
        if not ok:  # pragma: no cover - OpenCV encodes every non-empty uint8 image
            raise ValueError("JPEG encoding failed")
        blobs.append(np.frombuffer(data.tobytes(), np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, jpeg=np.concatenate(blobs) if blobs else np.zeros(0, np.uint8), offsets=offsets,
        canonical=np.asarray(bank.canonical, np.float32), to_crop=np.asarray(bank.to_crop, np.float64),
        frames=np.asarray(bank.frames, np.int64), rest=np.asarray(bank.rest, np.float32),
        pose_centre=np.asarray(bank.pose_centre, np.float32),
        fps=np.float64(bank.fps), version=np.int64(BANK_VERSION))
    return buffer.getvalue()


def save_bank(bank: ProfileBank, path: Path | str, overwrite: bool = False) -> int:
    """Write ``bank`` to ``path`` atomically; returns the file's size in bytes."""
    from lipdub.fileio import write_atomic

    data = encode_bank(bank)
    write_atomic(path, data, overwrite=overwrite)
    return len(data)


def load_bank(path: Path | str) -> ProfileBank:
    """Read a bank written by `save_bank`; a damaged or foreign file is a `LipdubError`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            version = int(npz["version"])
            if version != BANK_VERSION:
                raise LipdubError(f"{path}: mouth bank version {version} (this lipdub reads {BANK_VERSION})")
            jpeg, offsets = npz["jpeg"], npz["offsets"]
            canonical, to_crop = npz["canonical"], npz["to_crop"]
            frames, rest, fps = npz["frames"], npz["rest"], float(npz["fps"])
            pose_centre = npz["pose_centre"]
    except LipdubError:
        raise
    except FileNotFoundError:
        raise LipdubError(f"mouth bank not found: {path}") from None
    except (OSError, ValueError, KeyError) as error:
        raise LipdubError(f"cannot read the mouth bank {path}: {error}") from None
    count = len(offsets) - 1
    if (count < 0 or canonical.shape[1:] != (468, 2) or to_crop.shape[1:] != (2, 3) or rest.ndim != 3
            or not (len(canonical) == len(to_crop) == len(frames) == len(rest) == count)):
        raise LipdubError(f"{path}: inconsistent mouth bank")
    crops = []
    for k in range(count):
        image = cv2.imdecode(jpeg[offsets[k]:offsets[k + 1]], cv2.IMREAD_COLOR)
        if image is None:
            raise LipdubError(f"{path}: mouth {k} is not a readable JPEG")
        crops.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return ProfileBank(tuple(crops), canonical, to_crop, frames, rest, pose_centre, fps)


def profile_bank(profile: Path | str) -> ProfileBank | None:
    """The mouth bank a profile folder carries, or None when its profile.json names none (profiles
    made before banks existed, or from a video that never opened its mouth)."""
    path = Path(profile) / "profile.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LipdubError(f"cannot read {path}: {error}") from None
    info = meta.get("mouth_bank") if isinstance(meta, dict) else None
    if not info:
        return None
    name = info.get("file", BANK_FILE) if isinstance(info, dict) else BANK_FILE
    if Path(name).name != name:
        raise LipdubError(f"{path}: the mouth bank must be a file inside the profile, not {name!r}")
    return load_bank(Path(profile) / name)
