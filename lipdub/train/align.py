"""Measuring and correcting the audio lag of a dataset's clips with a sync expert.

Footage from broadcast and web chains often carries a fixed audio lag (tens of milliseconds, a
frame or three). Trained on such a clip, an expert and a generator learn that lag as "in sync";
evaluated on one, they are marked wrong for being right (docs/model-card.md shows three held-out
clips of the shared corpus at +2 frames). ``lipdub align-dataset`` asks an expert for each clip's
whole-clip offset and records the confident ones in ``av_offsets.csv``; every loader then re-times
the audio (:func:`lipdub.train.data.shift_mel`). Run it with an expert that has not been trained
on the clips it aligns (on its own training clips an expert answers "0" by construction).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from lipdub.train.data import AV_OFFSETS_FILE, Clip, read_av_offsets
from lipdub.train.preprocess import write_csv_atomic
from lipdub.train.syncnet import ClipOffsets

log = logging.getLogger(__name__)

AV_OFFSET_COLUMNS = ("clip_id", "av_offset", "confidence", "judge")


@dataclass(frozen=True)
class OffsetDecision:
    """What align-dataset does with one clip: ``previous`` and ``new`` av_offset (frames), the
    measured residual ``measured`` (relative to the already-applied previous offset), the
    measurement's confidence, and why a measurement was not applied (``""`` when it was)."""

    clip_id: str
    previous: int
    measured: int
    confidence: float
    new: int
    reason: str


def decide_offsets(
    measurements: Sequence[ClipOffsets],
    previous: dict[str, int],
    min_confidence: float,
    max_shift: int,
    min_shift: int = 2,
) -> list[OffsetDecision]:
    """Apply a measured offset only when it is confident, at least ``min_shift`` frames, and the
    total stays within ``max_shift``: a low-confidence or implausibly large shift (a failed
    measurement, not a lag) keeps the old value, and so does a one-frame residual, which is within
    an expert's precision (offset detection itself counts +-1 frame as a hit)."""
    decisions = []
    for m in measurements:
        old = previous.get(m.clip_id, 0)
        total = old + m.clip_offset
        if 0 < abs(m.clip_offset) < min_shift:
            reason = f"under {min_shift} frames"
        elif m.confidence < min_confidence:
            reason = "low confidence"
        elif abs(total) > max_shift:
            reason = f"beyond +-{max_shift} frames"
        else:
            reason = ""
        decisions.append(OffsetDecision(m.clip_id, old, m.clip_offset, m.confidence, old if reason else total, reason))
    return decisions


def write_av_offsets(dataset: Path, decisions: Sequence[OffsetDecision], judge_name: str) -> Path:
    """Merge ``decisions`` into the dataset's av_offsets.csv (other clips' rows kept), atomically."""
    path = Path(dataset) / AV_OFFSETS_FILE
    rows: dict[str, dict[str, str]] = {}
    if path.is_file():
        with open(path, newline="") as handle:
            rows = {row["clip_id"]: row for row in csv.DictReader(handle)}
    for d in decisions:
        if d.reason:
            continue
        rows[d.clip_id] = {"clip_id": d.clip_id, "av_offset": str(d.new), "confidence": f"{d.confidence:.4f}", "judge": judge_name}
    write_csv_atomic(path, AV_OFFSET_COLUMNS, (rows[k] for k in sorted(rows)))
    return path


def align_dataset(
    dataset: Path,
    clips: Sequence[Clip],
    measure: Callable[[Sequence[Clip]], list[ClipOffsets]],
    judge_name: str,
    min_confidence: float = 0.05,
    max_shift: int = 6,
    min_shift: int = 2,
    dry_run: bool = False,
) -> list[OffsetDecision]:
    """Measure ``clips`` (loaded with the offsets already recorded) and record the new offsets."""
    decisions = decide_offsets(measure(clips), read_av_offsets(dataset), min_confidence, max_shift, min_shift)
    if not dry_run:
        write_av_offsets(dataset, decisions, judge_name)
        log.info("recorded %d offsets in %s", sum(not d.reason for d in decisions), Path(dataset) / AV_OFFSETS_FILE)
    return decisions
