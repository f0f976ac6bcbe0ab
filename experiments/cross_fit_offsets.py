"""Cross-fitted audio-lag measurement for an expert's own training clips.

``lipdub align-dataset`` must use an expert that never trained on the clips it measures: on its
own training clips an expert answers "0" by construction, whatever the recording's lag. For a
user's corpus the bundled expert qualifies; for the corpus the bundled expert was trained on, none
does. Cross-fitting makes one: the training clips of one kind are dealt by speaker into K folds,
and each fold is measured by an expert trained on the other K - 1 (plus every clip of the other
kinds). This script does the bookkeeping around the ordinary commands:

    python experiments/cross_fit_offsets.py split DATASET -o WORK [--folds 2]
    # for each WORK/fold<k>:
    lipdub train syncnet WORK/fold<k> -o WORK/fold<k>-expert --config configs/syncnet_cpu.json --set steps=1200
    lipdub align-dataset WORK/fold<k> --judge WORK/fold<k>-expert/checkpoint.pt --split heldout --kind real
    python experiments/cross_fit_offsets.py merge WORK -o ALIGNED

``split`` writes dataset views (a relabelled clips.csv beside a link to DATASET's clips): the
fold's own clips get split "heldout", so ``train syncnet`` never loads them and ``align-dataset
--split heldout`` measures only them. ``merge`` writes a view ALIGNED of DATASET whose
av_offsets.csv holds every fold's measurements. Confirm them with a second measurer before training
on ALIGNED: on datasets/shared-v1 the fold experts' lags were contradicted by the landmark probe
(docs/model-card.md, "Are the training clips in sync?"; raw output in docs/runs/cross-fit/).
"""

from __future__ import annotations

import argparse
import csv
import shutil
from collections import defaultdict
from pathlib import Path

from lipdub.train.align import AV_OFFSET_COLUMNS
from lipdub.train.data import AV_OFFSETS_FILE, read_clips_table
from lipdub.train.preprocess import CLIP_COLUMNS, write_csv_atomic

HELD_OUT = "heldout"


def deal_speakers(frames_by_speaker: dict[str, int], folds: int) -> list[list[str]]:
    """Largest speaker first into the fold with the fewest frames so far: folds of similar size,
    no speaker in two folds."""
    dealt: list[list[str]] = [[] for _ in range(folds)]
    sizes = [0] * folds
    for speaker, frames in sorted(frames_by_speaker.items(), key=lambda item: (-item[1], item[0])):
        k = sizes.index(min(sizes))
        dealt[k].append(speaker)
        sizes[k] += frames
    return dealt


def make_view(source: Path, view: Path, rows: list[dict[str, str]]) -> None:
    """A dataset folder that shares ``source``'s clips and has its own clips.csv."""
    view.mkdir(parents=True, exist_ok=False)
    (view / "clips").symlink_to((source / "clips").resolve(), target_is_directory=True)
    shutil.copy2(source / "dataset.json", view / "dataset.json")
    write_csv_atomic(view / "clips.csv", CLIP_COLUMNS, rows)


def split_command(dataset: Path, work: Path, folds: int, kind: str) -> None:
    rows = read_clips_table(dataset)
    candidates = [r for r in rows if r["split"] == "train" and r["kind"] == kind]
    frames: dict[str, int] = defaultdict(int)
    for r in candidates:
        frames[r["speaker"]] += int(r["frames"])
    for k, speakers in enumerate(deal_speakers(frames, folds)):
        relabelled = [dict(r, split=HELD_OUT) if r in candidates and r["speaker"] in speakers else r for r in rows]
        make_view(dataset, work / f"fold{k}", relabelled)
        held = [r["clip_id"] for r in relabelled if r["split"] == HELD_OUT]
        print(f"fold{k}: {len(speakers)} speakers, {sum(frames[s] for s in speakers)} frames, {len(held)} clips held out")


def merge_command(dataset: Path, work: Path, output: Path) -> None:
    merged: dict[str, dict[str, str]] = {}
    for fold in sorted(work.glob("fold*")):
        path = fold / AV_OFFSETS_FILE
        if not fold.is_dir() or not path.is_file():
            continue
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if row["clip_id"] in merged:
                    raise SystemExit(f"{row['clip_id']} measured in two folds")
                merged[row["clip_id"]] = dict(row, judge=f"{fold.name}:{row['judge']}")
    make_view(dataset, output, read_clips_table(dataset))
    write_csv_atomic(output / AV_OFFSETS_FILE, AV_OFFSET_COLUMNS, (merged[k] for k in sorted(merged)))
    shifted = {k: v["av_offset"] for k, v in merged.items() if v["av_offset"] != "0"}
    print(f"{output}: {len(merged)} clips measured, {len(shifted)} re-timed: {shifted}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    split = commands.add_parser("split", help="write K fold views of DATASET under WORK")
    split.add_argument("dataset", type=Path)
    split.add_argument("-o", "--work", type=Path, required=True)
    split.add_argument("--folds", type=int, default=2)
    split.add_argument("--kind", default="real", help="which training clips to deal into folds")
    merge = commands.add_parser("merge", help="gather the folds' av_offsets.csv into a view of DATASET")
    merge.add_argument("work", type=Path)
    merge.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "split":
        split_command(args.dataset, args.work, args.folds, args.kind)
    else:
        merge_command(Path(args.work / "fold0" / "clips").resolve().parent, args.work, args.output)


if __name__ == "__main__":
    main()
