"""The mouth bank: the input video's own lower faces, and which one each output frame borrows.

A dubbed frame needs a mouth in a shape the input frame never had. Warping that frame's own closed
lips wide open smears them; borrowing a frame of the same video whose lips already have (nearly)
the target shape and warping it the last small step keeps real teeth, tongue and skin at the
video's own resolution (Video Rewrite, IP_LAP and DINet do the same with more machinery).

`choose_sources` picks one bank frame per output frame by a Viterbi path: the cost of a frame is
how far the bank frame's lip/jaw shape is from the target shape plus how different its head pose
is; moving to another bank frame costs ``switch_cost`` unless it is the next frame of the input
(playing the input forward is free). Without the switch cost the choice flickers between frames
that match about equally well, and teeth visibly jump.

Pixels live on disk (`PatchSpool`), never as a list of frames in memory: a bank frame is a crop of
the lower face only, and long videos keep at most ``capacity`` of them, evenly spaced.

`MouthBank` holds every mouth the engine may borrow behind one interface: the input's own frames
and, with a personalisation profile (`lipdub.render.profile_bank`), a few dozen real mouths of the
same speaker from another video. Each `BankEntry` carries its pixels, its Face Mesh points on
them and its canonical shape, so the renderer warps any of them the same way. A profile's mouths
never share the input's light or head pose exactly, so they cost `PROFILE_COST` more in the
retrieval. A mouth whose opening does not fit the target's costs more (an input frame
`INPUT_UNFIT_COST`, a profile's `UNFIT_COST`), so the path leaves a closed stretch of the input for
an open frame rather than paint, an input frame that fits keeps priority, and profile mouths fill
in where the input has none open enough (a closed-mouth photo, nearly always). They lend only the opening, never
the skin, and never hold a pause (`lipdub.render.hold` picks among input frames).
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass

import numpy as np

from lipdub.eval.mouth import LIP_INNER, LIP_OUTER

#: Weights of the motion points in the shape distance: inner lips (the opening, teeth) count most.
INNER_WEIGHT, OUTER_WEIGHT, JAW_WEIGHT = 3.0, 1.5, 0.5
CANDIDATES = 12
SWITCH_COST = 0.02
POSE_WEIGHT = 1.0
#: Extra retrieval cost (eye units, like the shape distance) of a mouth from a profile, and the
#: weight of its head-pose difference (its pose is measured in another video's canonical frame).
PROFILE_COST = 0.01
PROFILE_POSE_WEIGHT = 0.3
#: The extra cost of a profile's mouth whose opening does not fit the target's
#: (`lipdub.render.interior.opening_fits`): the shape distance alone rates a closed photo only
#: ~0.02 eye units off a half-open target, less than any mouth of another video scores, though its
#: opening could only be painted. Targets at most `CLOSED_TARGET` open fit any closed mouth.
UNFIT_COST = 0.02
#: The extra cost of an input frame whose opening does not fit the target's, with or without a
#: profile. Without it (stop 19 and before, when it applied only beside a profile) the path kept
#: following the input's own frames, where leaving them costs two switches (0.04), and a closed
#: frame under an open target had its opening painted although the next frames showed teeth
#: (`expressive/man_selfie_grey_tshirt.mp4` + English, frame 46: a black hole under a white bar;
#: with 0.05 it borrows frame 47's real teeth). Above two switches, so an unfit run is left.
INPUT_UNFIT_COST = 0.05
CLOSED_TARGET = 0.02
#: On top of that, an entry whose opening would have to be painted (`interior_alpha`: a nearly shut
#: mouth under a clearly open target) costs this much times the paint's weight. The flat unfit cost
#: rates a shut frame under a wide-open target like a half-open one, and beside the frame's own
#: head pose (pose distance 0, where the nearest fitting mouth is 0.01-0.06 off) the path kept it:
#: `woman_flag` + French, frames 44 and 46 (openings 0.025 and 0.036 for targets 0.16-0.17), a
#: painted dark hole between frames showing teeth. 0.025 mends it as 0.05 did; 0.05 borrowed more
#: mouths elsewhere, and their widths flattened the kept expression (Korean dub: range 0.771 vs 0.824).
PAINT_COST = 0.025
#: Extra cost (eye units) of an entry to avoid (`choose_sources`): above any shape distance, so
#: it is lent only where nothing else is left; finite, so a bank of such entries still answers.
AVOID_COST = 10.0
#: Weight of the mouth-width difference (outer corners, canonical eye units) in the retrieval, on top
#: of the shape distance. Face Mesh re-reads a borrowed opening's own width into the output's
#: mouth: regressed over `woman_seated_vertical` dubbed in German, the re-measured width moved with
#: the target's at 0.90 and with the borrowed mouth's difference from it at 0.13-0.22, so random
#: widths from other moments flattened the kept expression (1 s width range 0.706 of the input's
#: without this term; 0.789 at weight 1, 0.722 at 0.5, 0.742 at 2; in Russian 0.689 -> 0.734 at 1).
#: A borrowed mouth of the target's width is also stretched less.
WIDTH_WEIGHT = 1.0
#: Points whose canonical position reflects head yaw/pitch (nose tip, nose ridge; the chin is not
#: used: it moves with speech).
POSE_POINTS = (1, 4, 5, 195)
#: Per-channel lip-colour gain a borrowed interior may get: the input's own frames share its light,
#: a profile's were filmed under another one.
INPUT_GAIN_RANGE = (0.8, 1.25)
PROFILE_GAIN_RANGE = (0.6, 1.6)
#: A profile mouth's opening is sampled inside its inner-lip ring pulled in by this share of its
#: height (`lipdub.engines.motion.interior_source`). Face Mesh's inner contour of a half-open mouth
#: runs through the teeth and takes in a strip of lip (looked at on man_congressman_60s); warped
#: whole onto a photo's ring, that lip made the opening read 0.69 x as wide as its target (render
#: r 0.79); pulled in by 0.25 / 0.4: 0.92 x / 1.08 x (r 0.84 / 0.87), the painted interior 1.10 x
#: (r 0.91). On a GRID speaker (larger mouth) r stayed at 0.99 for each.
PROFILE_INSET = 0.4
#: Sequence keys of entries from outside the input start below this (see `sequence_keys`).
_OUTSIDE_KEY = -10


def pose_features(canonical: np.ndarray) -> np.ndarray:
    """(..., 2 * len(POSE_POINTS)) head-pose features of (..., 468+, 2) canonical Face Mesh points."""
    canonical = np.asarray(canonical, np.float64)
    return canonical[..., list(POSE_POINTS), :].reshape(*canonical.shape[:-2], -1)


def sequence_keys(bank_frames: np.ndarray) -> np.ndarray:
    """(B,) positions the Viterbi path plays along: an input frame's own number; for an entry from
    outside the input (frame < 0) a key no other entry is 0 or 1 away from, so moving to or from it
    always costs a switch, and staying on it is free."""
    frames = np.asarray(bank_frames, np.int64)
    outside = frames < 0
    keys = frames.copy()
    keys[outside] = _OUTSIDE_KEY - 2 * np.arange(int(outside.sum()))
    return keys


def shape_weights(points: int) -> np.ndarray:
    """(points,) weights for the motion points in `lipdub.motion.shape.MOTION_POINTS` order."""
    weights = np.full(points, JAW_WEIGHT)
    weights[: len(LIP_OUTER)] = OUTER_WEIGHT
    weights[len(LIP_OUTER): len(LIP_OUTER) + len(LIP_INNER)] = INNER_WEIGHT
    return weights / weights.sum()


def shape_distances(targets: np.ndarray, bank: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(T, B) weighted RMS point distance between (T, P, 2) target and (B, P, 2) bank shapes."""
    w = np.sqrt(np.asarray(weights, np.float64))[None, :, None]
    a = (np.asarray(targets, np.float64) * w).reshape(len(targets), -1)
    b = (np.asarray(bank, np.float64) * w).reshape(len(bank), -1)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def centre_lips(shapes: np.ndarray) -> np.ndarray:
    """(..., P, 2) motion-point shapes moved so that the lip points' (outer + inner) centroid is 0."""
    shapes = np.asarray(shapes, np.float64)
    lips = len(LIP_OUTER) + len(LIP_INNER)
    return shapes - shapes[..., :lips, :].mean(axis=-2, keepdims=True)


def viterbi_path(costs: np.ndarray, candidates: np.ndarray, frame_of: np.ndarray, switch_cost: float,
                 after: int | None = None) -> np.ndarray:
    """(T,) chosen bank ids: the path through per-frame candidates of least total cost.

    costs, candidates: (T, K); ``frame_of``: input frame index of each bank id. A step from bank
    id a to b is free when frame_of[b] - frame_of[a] is 0 or 1 (holding or playing forward), else
    costs ``switch_cost``. ``after``: the bank id the frame before these showed (a live stream
    chooses a piece at a time, `lipdub.live`): the first step from it is priced the same way, so
    the path carries on from it rather than starting afresh.
    """
    costs = np.asarray(costs, np.float64)
    t_count, k = costs.shape
    total = costs[0].copy()
    if after is not None:
        step = frame_of[candidates[0]] - frame_of[int(after)]
        total += np.where((step == 0) | (step == 1), 0.0, switch_cost)
    back = np.zeros((t_count, k), np.int64)
    for t in range(1, t_count):
        step = frame_of[candidates[t]][None, :] - frame_of[candidates[t - 1]][:, None]  # (K_prev, K)
        transition = np.where((step == 0) | (step == 1), 0.0, switch_cost)
        options = total[:, None] + transition
        back[t] = np.argmin(options, axis=0)
        total = options[back[t], np.arange(k)] + costs[t]
    path = np.empty(t_count, np.int64)
    path[-1] = int(np.argmin(total))
    for t in range(t_count - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return candidates[np.arange(t_count), path]


def choose_sources(target_shapes: np.ndarray, target_pose: np.ndarray, target_frames: np.ndarray,
                   bank_shapes: np.ndarray, bank_pose: np.ndarray, bank_frames: np.ndarray,
                   exclude_within: int | None = None, candidates: int = CANDIDATES,
                   switch_cost: float = SWITCH_COST, pose_weight: float = POSE_WEIGHT,
                   bank_cost: np.ndarray | None = None, centred: np.ndarray | None = None,
                   fit: tuple[np.ndarray, np.ndarray, float | np.ndarray] | None = None, width_weight: float = WIDTH_WEIGHT,
                   paint_cost: float = PAINT_COST, avoid: np.ndarray | None = None,
                   chunk: int = 512, after: int | None = None) -> np.ndarray:
    """(T,) bank ids for T output frames (see the module docstring).

    ``target_frames``: the input frame each output frame shows; ``bank_frames``: the input frame
    each bank entry is, or -1 for an entry from outside the input (a profile's). With
    ``exclude_within`` = n, input entries within n frames of the output frame's own are never
    chosen (the evaluation uses this so that a reconstruction cannot copy the real mouth of the
    moment); entries from outside the input are never excluded. Shapes are canonical motion points,
    poses small canonical vectors (nose position); both weigh in eye units, as does ``bank_cost``,
    an extra (B,) cost per entry. ``pose_weight`` may be one number or one per entry. For the
    entries ``centred`` marks (B,) the shape distance ignores where the mouth sits (`centre_lips`
    on both sides): only its shape counts. ``fit`` = (bank openings (B,), target openings (T,),
    cost, one number or (B,) per entry): an entry whose opening does not fit the target's
    (`opening_fits`) costs that much more, and one whose opening would be painted
    (`interior_alpha`) ``paint_cost`` times the paint's weight on top. ``width_weight`` times the difference of mouth widths
    (`lipdub.motion.shape.mouth_width`) is added to every cost. An entry ``avoid`` marks (B,) costs
    `AVOID_COST` more to every output frame but the one showing that very input frame (a frame
    whose mouth is covered: `lipdub.render.occlusion`). ``after``: the bank id shown just before
    the first of these frames, which the path carries on from (`viterbi_path`).
    """
    from lipdub.motion.shape import mouth_width
    from lipdub.render.interior import interior_alpha, opening_fits

    weights = shape_weights(np.asarray(bank_shapes).shape[1])
    bank_frames = np.asarray(bank_frames, np.int64)
    extra = None if bank_cost is None else np.asarray(bank_cost, np.float64)[None, :]
    centred = np.zeros(len(bank_frames), bool) if centred is None else np.asarray(centred, bool)
    centred_bank = centre_lips(np.asarray(bank_shapes)[centred])
    pose_weight = np.asarray(pose_weight, np.float64)
    k = min(candidates, len(bank_frames))
    bank_widths = mouth_width(bank_shapes)
    chosen_ids, chosen_costs = [], []
    for start in range(0, len(target_shapes), chunk):
        stop = min(len(target_shapes), start + chunk)
        cost = shape_distances(target_shapes[start:stop], bank_shapes, weights)
        if centred.any():
            cost[:, centred] = shape_distances(centre_lips(target_shapes[start:stop]), centred_bank, weights)
        pose = np.linalg.norm(np.asarray(target_pose[start:stop], np.float64)[:, None, :]
                              - np.asarray(bank_pose, np.float64)[None, :, :], axis=-1)
        cost = cost + pose_weight * pose
        if width_weight > 0:
            cost = cost + width_weight * np.abs(mouth_width(target_shapes[start:stop])[:, None] - bank_widths[None, :])
        if extra is not None:
            cost = cost + extra
        if fit is not None and np.any(np.asarray(fit[2]) > 0):
            fits = opening_fits(np.asarray(fit[0])[None, :], np.asarray(fit[1])[start:stop, None], closed=CLOSED_TARGET)
            cost = cost + np.where(fits, 0.0, np.asarray(fit[2], np.float64))
        if fit is not None and paint_cost > 0:
            cost = cost + paint_cost * interior_alpha(np.asarray(fit[0])[None, :], np.asarray(fit[1])[start:stop, None],
                                                      closed=CLOSED_TARGET)
        if avoid is not None and np.any(avoid):
            others = np.asarray(target_frames[start:stop])[:, None] != bank_frames[None, :]
            cost = cost + np.where(np.asarray(avoid, bool)[None, :] & others, AVOID_COST, 0.0)
        if exclude_within is not None:
            near = np.abs(np.asarray(target_frames[start:stop])[:, None] - bank_frames[None, :]) <= exclude_within
            cost = np.where(near & (bank_frames >= 0)[None, :], np.inf, cost)
        ids = np.argpartition(cost, k - 1, axis=1)[:, :k]
        chosen_ids.append(ids)
        chosen_costs.append(np.take_along_axis(cost, ids, axis=1))
    ids = np.concatenate(chosen_ids)
    costs = np.concatenate(chosen_costs)
    if not np.isfinite(costs).any(axis=1).all():
        raise ValueError("some output frame has no allowed bank frame")
    costs = np.where(np.isfinite(costs), costs, 1e6)
    return viterbi_path(costs, ids, sequence_keys(bank_frames), switch_cost, after)


#: The unfit and paint costs (eye units) of the second choice for a run of frames the path left to
#: paint (`repick_painted_runs`): far above any shape distance, so a mouth that fits wins wherever
#: the bank has one. `PAINT_COST` alone, weighed against staying in the input's own run and head
#: pose, left `woman_flag_closeup` dubbed in Japanese a painted black slit (frames 98-100, openings
#: 0-0.001 under targets 0.065-0.078) between frames of real teeth.
REPICK_COST = 1.0


def repick_painted_runs(picks: np.ndarray, openings: np.ndarray, wanted: np.ndarray,
                        choose_run, cost: float = REPICK_COST) -> np.ndarray:
    """The path ``picks`` (bank indices), with each run of frames whose borrowed opening would be
    painted (`interior_alpha` > 0) chosen again by ``choose_run(start, stop, cost)`` -- the same
    retrieval over those frames with ``cost`` as its unfit and paint costs -- wherever that gives a
    mouth that fits; frames the bank cannot serve keep their first pick.

    Why a second pass rather than a larger `PAINT_COST`: a larger cost on the whole path also
    trades good-enough own mouths for borrowed ones of other widths, which flattened the kept
    expression (see `PAINT_COST`); a run already doomed to paint loses nothing by leaving its run.
    """
    from lipdub.render.hold import runs_of
    from lipdub.render.interior import interior_alpha

    picks = np.array(picks, copy=True)
    openings, wanted = np.asarray(openings, np.float64), np.asarray(wanted, np.float64)
    painted = interior_alpha(openings[picks], wanted, closed=CLOSED_TARGET) > 0
    for start, stop in runs_of(np.atleast_1d(painted)):
        again = np.asarray(choose_run(start, stop, cost))
        fits = interior_alpha(openings[again], wanted[start:stop], closed=CLOSED_TARGET) == 0
        picks[start:stop] = np.where(fits, again, picks[start:stop])
    return picks


@dataclass(frozen=True)
class Patch:
    """Where one bank frame's pixels are: a crop of the input frame with its top-left pixel."""

    offset: int
    shape: tuple[int, int, int]
    origin: tuple[int, int]


class PatchSpool:
    """Image crops appended to an anonymous temporary file and read back by reference."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="lipdub-bank-")
        self._size = 0
        self._map: np.memmap | None = None
        self._lock = threading.Lock()  # render threads read at once; the map is made once

    def add(self, image: np.ndarray, origin: tuple[int, int]) -> Patch:
        data = np.ascontiguousarray(image, np.uint8)
        self._file.seek(self._size)
        self._file.write(data.tobytes())
        patch = Patch(self._size, tuple(data.shape), origin)
        self._size += data.nbytes
        self._map = None
        return patch

    def read(self, patch: Patch) -> np.ndarray:
        with self._lock:
            if self._map is None:
                self._file.flush()
                self._map = np.memmap(self._file, dtype=np.uint8, mode="r", shape=(max(1, self._size),))
            mapped = self._map
        count = int(np.prod(patch.shape))
        return np.asarray(mapped[patch.offset: patch.offset + count]).reshape(patch.shape)

    def close(self) -> None:
        self._map = None
        self._file.close()


@dataclass(frozen=True)
class BankEntry:
    """One mouth the renderer may borrow: its pixels and where its Face Mesh points lie on them.

    ``points`` are in the pixels ``crop`` shows with ``origin`` at its top-left (frame pixels for
    an input frame, the crop's own for a profile's); ``shape`` is its canonical motion-point shape
    as retrieval compares it and ``opening`` its real inner-lip opening (eye units).
    """

    crop: np.ndarray
    origin: tuple[int, int]
    points: np.ndarray
    shape: np.ndarray
    opening: float
    frame: int = -1  # the input frame it is, or -1
    profile_index: int = -1  # its index in the profile's bank, or -1
    gain_range: tuple[float, float] = INPUT_GAIN_RANGE
    inset: float = 0.0  # share of the opening's height its ring is pulled in before sampling


class MouthBank:
    """Every mouth the engine may borrow, from the input and from a profile, through one interface.

    Input frames are added while the input is tracked (`add_input`: pixels only, since their
    canonical frame is known only once the whole input is); `place` then gives every entry its
    geometry. A profile's mouths (`lipdub.render.profile_bank.ProfileBank`) come with their own,
    measured in another video's canonical frame: there the same head pose and the same closed mouth
    can read a tenth of an eye unit off (measured: a GRID speaker's photo against his own other
    clip), more than the whole difference between two openings. So a profile mouth is compared as
    its *speech motion* (its shape minus the rest shape of its moment) put on the input's rest
    shape, and its pose as its offset from the profile video's median pose put on the input's.
    """

    def __init__(self, profile=None) -> None:
        self._spool = PatchSpool()
        self._patches: list[Patch] = []
        self._frames: list[int] = []
        self._profile_ids: list[int] = []
        self._profile = profile
        self._inputs: dict[int, int] = {}  # input frame -> its entry
        self._adding = threading.Lock()
        self._points: list[np.ndarray] = []
        self.shapes = self.pose = self.openings = None
        if profile is not None:
            for k, crop in enumerate(profile.crops):
                self._patches.append(self._spool.add(crop, (0, 0)))
                self._frames.append(-1)
                self._profile_ids.append(k)

    def __len__(self) -> int:
        return len(self._patches)

    def add_input(self, frame: int, crop: np.ndarray, origin: tuple[int, int]) -> None:
        """Keep the pixels of input frame ``frame`` (a crop whose top-left is frame pixel ``origin``).

        Safe to call from two threads (the tracking pass may track a long video's halves at once),
        in any order; a second call for the same frame replaces the first (an abandoned half is
        tracked again), and `discard_input` forgets one.
        """
        with self._adding:
            patch = self._spool.add(crop, origin)
            if frame in self._inputs:
                self._patches[self._inputs[frame]] = patch
                return
            self._inputs[int(frame)] = len(self._patches)
            self._patches.append(patch)
            self._frames.append(int(frame))
            self._profile_ids.append(-1)

    def discard_input(self, frame: int) -> None:
        """Forget input frame ``frame`` if it was added (it turned out to have no face)."""
        with self._adding:
            position = self._inputs.pop(frame, None)
            if position is None:
                return
            for name in ("_patches", "_frames", "_profile_ids"):
                del getattr(self, name)[position]
            self._inputs = {f: k - (k > position) for f, k in self._inputs.items()}

    def _order_inputs(self, frame_count: int) -> None:
        """Profile entries first, then the input's in frame order, those of frames the input
        does not have dropped: the bank is the same however the tracking pass was split."""
        keep = sorted((f, k) for f, k in self._inputs.items() if f < frame_count)
        profile = [k for k, f in enumerate(self._frames) if f < 0]
        order = profile + [k for _, k in keep]
        self._patches = [self._patches[k] for k in order]
        self._frames = [self._frames[k] for k in order]
        self._profile_ids = [self._profile_ids[k] for k in order]
        self._inputs = {f: len(profile) + j for j, (f, _) in enumerate(keep)}

    @property
    def frames(self) -> np.ndarray:
        """(B,) input frame of each entry, -1 for a profile's."""
        return np.asarray(self._frames, np.int64)

    @property
    def from_input(self) -> np.ndarray:
        return self.frames >= 0

    @property
    def profile_indices(self) -> np.ndarray:
        """(B,) index into the profile's bank of each entry, -1 for the input's."""
        return np.asarray(self._profile_ids, np.int64)

    def costs(self, profile_cost: float = PROFILE_COST) -> np.ndarray:
        """(B,) extra retrieval cost of each entry: 0 for the input's, ``profile_cost`` for a profile's."""
        return np.where(self.from_input, 0.0, profile_cost)

    def pose_weights(self, input_weight: float = POSE_WEIGHT, profile_weight: float = PROFILE_POSE_WEIGHT) -> np.ndarray:
        """(B,) weight of the head-pose difference of each entry in the retrieval."""
        return np.where(self.from_input, input_weight, profile_weight)

    def place(self, landmarks: np.ndarray, canonical: np.ndarray, rest: np.ndarray, pose_centre: np.ndarray,
              rest_kind: str) -> None:
        """Give every entry its geometry, from the input's (N, 478, 2) raw frame points, their (N, 468, 2)
        canonical positions, the input's (P, 2) rest shape and (D,) pose features (medians over the input).
        ``rest_kind`` is how that rest was measured; a profile's entries are re-based from their own
        rest of the same kind."""
        from lipdub.motion.shape import MOTION_POINTS, aperture

        self._order_inputs(len(landmarks))
        frames = self.frames
        count = len(frames)
        motion = list(MOTION_POINTS)
        canonical = np.asarray(canonical, np.float64)
        shapes = np.full((count, len(motion), 2), np.nan)
        pose = np.full((count, 2 * len(POSE_POINTS)), np.nan)
        points: list[np.ndarray] = [None] * count  # type: ignore[list-item]
        inside = np.flatnonzero(frames >= 0)
        if len(inside):
            shapes[inside] = canonical[frames[inside]][:, motion]
            pose[inside] = pose_features(canonical[frames[inside]])
            for b in inside:
                points[b] = np.asarray(landmarks[frames[b]], np.float64)
        outside = np.flatnonzero(frames < 0)
        openings = np.full(count, np.nan)
        if len(outside):
            profile = self._profile
            own = profile.shapes()
            openings[outside] = aperture(own)
            shapes[outside] = np.asarray(rest, np.float64)[None] + own - profile.rest_as(rest_kind)
            pose[outside] = np.asarray(pose_centre, np.float64)[None] + pose_features(profile.canonical) - profile.pose_centre
            for b, p in zip(outside, profile.points()):
                points[b] = p
        if len(inside):
            openings[inside] = aperture(shapes[inside])
        self.shapes, self.pose, self.openings, self._points = shapes, pose, openings, points

    def entry(self, index: int) -> BankEntry:
        """Bank entry ``index`` with its pixels read back."""
        patch = self._patches[index]
        frame = self._frames[index]
        return BankEntry(self._spool.read(patch), patch.origin, self._points[index], self.shapes[index],
                         float(self.openings[index]), frame, self._profile_ids[index],
                         INPUT_GAIN_RANGE if frame >= 0 else PROFILE_GAIN_RANGE,
                         0.0 if frame >= 0 else PROFILE_INSET)

    def close(self) -> None:
        self._spool.close()
