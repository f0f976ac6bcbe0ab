"""Who is speaking in a clip, what kind of clip it is, and which speakers go to validation.

A validation figure is only honest when no person in it was seen in training, so the dataset is
split by *speaker*, never by clip or frame. Speakers are rarely written down, so they are inferred
from where the file lies. The rules, in order (the first that applies wins):

1. **Manifest.** A ``manifest.tsv`` (tab-separated, columns ``file`` and ``speaker``; ``file``
   relative to the manifest's folder) in the clip's folder or any folder above it names the
   speaker. ``-`` or an empty cell means "unknown" and falls through to the layout rules. The
   shared corpus ships one; users can write one for their own footage.
2. **VoxCeleb layout** ``.../id00012/<youtube id>/00001.mp4``: the ``idNNNNN`` folder.
   **MEAD** actor ids (``M030``, ``W009``) as a folder (``M030/video/front/happy/...``) or as a
   ``_``-separated part of the file name (``mead_M030_front_happy_level3_001``): the actor, so
   that one person's emotions stay on one side of the split.
3. **LRS2 / LRS3 layout** ``.../<video id>/00001.mp4`` (the file name is an utterance number):
   the parent folder, i.e. the source video, which is one speaker.
4. **Flat folder** (HDTF, the shared corpus, a user's folder of takes): the file stem, less a
   trailing take number (``woman_lecturer_2`` → ``woman_lecturer``, ``talk_clip3`` → ``talk``), so
   that numbered takes of one person cannot land on both sides of the split. A folder of anonymous
   ``clip_001.mp4`` files therefore becomes one speaker; write a manifest to tell them apart.

Only the part of the path below the source root the user named is read by rules 2-3, so folder
names above it (a home directory called ``id1234``) cannot leak in.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from lipdub.errors import LipdubError

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.tsv"
UNKNOWN_SPEAKER = "-"

#: Folder names of the shared corpus and the kind of footage they hold (`clip_kind`).
KIND_FOLDERS = {
    "real": "real",
    "synthetic": "synthetic",
    "silent": "silent",
    "expressive": "expressive",
    "photos": "photo",
}

_VOXCELEB_ID = re.compile(r"^id\d{3,}$")
_MEAD_ACTOR = re.compile(r"^[MW]\d{3}$")
_UTTERANCE = re.compile(r"^\d+$")
# A trailing take number: "_2", "-03", "_clip3", "_take12", "_part1" (at most three digits, so
# that a year such as "interview_2019" stays part of the name).
_TAKE_SUFFIX = re.compile(r"^(?P<base>.+?)[_-](?:clip|take|part)?\d{1,3}$", re.IGNORECASE)


def _resolved(path: Path) -> str:
    return Path(path).resolve().as_posix()


def read_manifest(manifest: Path) -> dict[str, str]:
    """Speakers listed in one ``manifest.tsv``, keyed by the resolved path of each file.

    Rows whose speaker is unknown (``-`` or empty) are left out, so that the layout rules apply to
    them. A file without ``file``/``speaker`` columns is ignored (it is some other manifest).
    """
    folder = manifest.parent
    speakers: dict[str, str] = {}
    with open(manifest, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if not reader.fieldnames or not {"file", "speaker"} <= set(reader.fieldnames):
            logger.info("%s has no file/speaker columns; ignored", manifest)
            return speakers
        for row in reader:
            name, speaker = (row.get("file") or "").strip(), (row.get("speaker") or "").strip()
            if name and speaker and speaker != UNKNOWN_SPEAKER:
                speakers[_resolved(folder / name)] = speaker
    return speakers


def load_manifests(media: Iterable[Path]) -> dict[str, str]:
    """Speakers from every ``manifest.tsv`` in a folder holding, or above, any of ``media``.

    Keys are resolved absolute paths (what `infer_speaker` looks up). A manifest nearer the clip
    wins over one further up.
    """
    folders: set[Path] = set()
    for path in media:
        folders.update(Path(path).resolve().parents)
    speakers: dict[str, str] = {}
    # Furthest first, so that nearer manifests overwrite.
    for folder in sorted(folders, key=lambda f: len(f.parts)):
        manifest = folder / MANIFEST_NAME
        if manifest.is_file():
            speakers.update(read_manifest(manifest))
    return speakers


def _relative_parts(path: Path, roots: Sequence[Path]) -> tuple[str, ...]:
    """Folder names of ``path`` below the deepest root that holds it (all of them if none does)."""
    resolved = Path(path).resolve()
    best: tuple[str, ...] | None = None
    for root in roots:
        root = Path(root).resolve()
        if root == resolved:
            parts: tuple[str, ...] = ()
        elif root in resolved.parents:
            parts = resolved.relative_to(root).parts[:-1]
        else:
            continue
        if best is None or len(parts) < len(best):
            best = parts
    return best if best is not None else resolved.parts[:-1]


def strip_take_number(stem: str) -> str:
    """``woman_lecturer_2`` → ``woman_lecturer``; a stem without a take number is kept whole."""
    match = _TAKE_SUFFIX.match(stem)
    return match.group("base") if match else stem


def infer_speaker(path: Path, roots: Sequence[Path], manifest: Mapping[str, str] | None) -> str:
    """The speaker of the clip at ``path`` by the rules in this module's docstring."""
    path = Path(path)
    if manifest:
        named = manifest.get(_resolved(path))
        if named:
            return named
    folders = _relative_parts(path, roots)
    for folder in reversed(folders):
        if _VOXCELEB_ID.match(folder) or _MEAD_ACTOR.match(folder):
            return folder
    actor = next((part for part in path.stem.split("_") if _MEAD_ACTOR.match(part)), None)
    if actor is not None:
        return actor
    if folders and _UTTERANCE.match(path.stem):
        return folders[-1]
    if not folders and _UTTERANCE.match(path.stem):
        # A numbered utterance given on its own: its folder is still the best guess.
        return path.resolve().parent.name or path.stem
    return strip_take_number(path.stem)


def clip_kind(path: Path) -> str:
    """real / synthetic / silent / expressive / photo from the nearest folder so named, else other.

    Nearest first, so ``train/real/x.mp4`` is "real" even under a folder called ``synthetic``.
    """
    for folder in reversed(Path(path).parent.parts):
        kind = KIND_FOLDERS.get(folder.lower())
        if kind:
            return kind
    return "other"


def _rank(seed: int, speaker: str) -> str:
    """A stable pseudo-random rank: adding speakers later does not reshuffle the earlier ones."""
    return hashlib.sha256(f"{seed}\0{speaker}".encode()).hexdigest()


def split_speakers(
    speakers: Iterable[str],
    val_fraction: float,
    seed: int,
    val_speakers: Sequence[str] | None = None,
) -> dict[str, str]:
    """Assign every speaker to "train" or "val" — deterministically, whole speakers only.

    With ``val_speakers`` given, exactly those are validation (each must exist). Otherwise
    ``round(n * val_fraction)`` speakers, at least one when there are two or more and
    ``val_fraction`` > 0, and never all of them, are drawn by a seeded hash of their names.
    """
    unique = sorted(set(speakers))
    if val_speakers is not None:
        missing = sorted(set(val_speakers) - set(unique))
        if missing:
            raise LipdubError(f"validation speaker(s) not in the data: {', '.join(missing)}")
        chosen = set(val_speakers)
        return {speaker: "val" if speaker in chosen else "train" for speaker in unique}
    if not 0.0 <= val_fraction < 1.0:
        raise LipdubError(f"validation fraction must be in [0, 1), got {val_fraction}")
    count = 0
    if len(unique) >= 2 and val_fraction > 0:
        count = min(len(unique) - 1, max(1, round(len(unique) * val_fraction)))
    chosen = set(sorted(unique, key=lambda s: _rank(seed, s))[:count])
    return {speaker: "val" if speaker in chosen else "train" for speaker in unique}
