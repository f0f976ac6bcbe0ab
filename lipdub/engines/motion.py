"""lipdub's default engine: predict lip motion from speech, move the speaker's own pixels.

Per output frame, the data flow reads in one direction:

1. **shape** (`lipdub.motion`): the target lower-face shape = the input frame's rest shape (its own
   slow expression) + the speech motion the lip motion model predicts, scaled to this speaker;
2. **warp** (`lipdub.render.warp`): the frame's own skin and lips, piecewise-affinely moved onto
   that shape at full resolution (Face Mesh's triangles, which leave the mouth opening as a hole);
3. **interior**: the opening is filled from the frame itself when it is already open enough, else
   from the mouth bank (`lipdub.render.bank.MouthBank`): the input frame whose lips are nearest the
   target in a similar head pose, or, with a personalisation profile, one of the speaker's mouths
   it carries (`lipdub.render.profile_bank`; input frames keep priority), chosen along a Viterbi
   path so teeth do not flicker; where even that mouth is much more closed than the target (always,
   for a closed-mouth photo without a profile), a painted cavity and teeth (`lipdub.render.interior`,
   the default) or the learned interior network (`lipdub.render.learned_interior`;
   `MotionEngineOptions.interior`) cover the difference;
4. **blend**: a feathered mask over the old and new lower face; every pixel outside it is the
   input's, exactly.

Only the opening ever comes from another frame, so skin, stubble, earrings and background at the
jaw are the frame's own: a borrowed frame's other head pose cannot ghost into the cheek.
Zero motion with the frame as its own source is the identity: the output equals the input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from lipdub.engines.base import FrameJob, RenderPlan
from lipdub.errors import LipdubError
from lipdub.eval.mouth import mouth_aperture
from lipdub.face.blend import LOWER_FACE_OUTLINE, feathered_polygons, inner_feather
from lipdub.face.hands import FACE_OVAL, finger_half_width, hand_keep_weights, hands_beside_face, hands_cover
from lipdub.motion import shape as S
from lipdub.motion.transfer import POSE_POINTS, follow_fast_pose, keep_slow_expression, speaker_scale, target_shapes
from lipdub.render import bank as B
from lipdub.render.hold import (FADE_SECONDS, GATE_SHUT_BELOW, HOLD_YAW_LIMIT, MIN_HOLD_SECONDS, NEARLY_SHUT,
                                SEARCH_SECONDS, LiveHold, choose_hold_frame, choose_slit_frame, closing_needed,
                                closing_runs, fits_hold_width, head_yaw, hold_weights, live_hold_step,
                                own_mouths_can_follow, pause_runs, runs_of, yaw_segments)
from lipdub.render.interior import FIT_SLACK, anchored_inner_ring, interior_alpha, lip_colour, opening_fits, paint_interior, teeth_colour
from lipdub.render.occlusion import LOWER_FACE_POINTS, WINDOW_SECONDS, face_colours, occluded, occlusion_scores
from lipdub.render.mesh import MESH_POINTS, build_mesh, surface_distances, unfold, warp_vertices
from lipdub.render.warp import bounding_rect, paste_antialiased, warp_patch

logger = logging.getLogger(__name__)

#: Bank frames kept at most (evenly spaced over the input) and the pixel margin around each crop.
BANK_CAPACITY = 1500
BANK_MARGIN = 6
#: Face Mesh eye contours (the sclera is sampled for the painted teeth's white).
RIGHT_EYE_RING = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE_RING = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
#: Width of the soft mask edge and of the displacement falloff, in eye units.
FEATHER_EYE_UNITS = 0.18
FALLOFF_EYE_UNITS = 0.12
#: Near the motion points the falloff narrows to this many times the distance to the nearest one,
#: down to `MIN_FALLOFF_EYE_UNITS` (`displacement_weights`).
NEAREST_WIDTH = 3.0
MIN_FALLOFF_EYE_UNITS = 0.03


@dataclass(frozen=True)
class HoldCandidates:
    """The bank entries a pause or closing hold may use, per entry: ``openings`` (eye units; NaN for
    a mouth from outside the input or a covered one, never held on), ``bank_yaw`` (the head turn of
    its frame) and ``widths`` (mouth widths); with ``yaw``, the head turn of every input frame."""

    openings: np.ndarray
    yaw: np.ndarray
    bank_yaw: np.ndarray
    widths: np.ndarray


@dataclass(frozen=True)
class MotionEngineOptions:
    """Choices of the motion engine a user (or an evaluation protocol) may make."""

    color_match: bool = True
    #: Bank frames within this many seconds of the output frame's own input frame are never used
    #: (evaluation: so a reconstruction cannot copy the real mouth of the moment). None = allowed.
    exclude_seconds: float | None = None
    bank_capacity: int = BANK_CAPACITY
    batch_size: int = 16
    #: Bank retrieval weights (`lipdub.render.bank.choose_sources`).
    pose_weight: float = B.POSE_WEIGHT
    switch_cost: float = B.SWITCH_COST
    #: Extra retrieval cost of a profile's mouth over an input frame, and the weight of its pose
    #: difference (`lipdub.render.bank.PROFILE_COST`, `PROFILE_POSE_WEIGHT`).
    profile_cost: float = B.PROFILE_COST
    profile_pose_weight: float = B.PROFILE_POSE_WEIGHT
    #: Extra cost of a profile's mouth whose opening does not fit the target's (`B.UNFIT_COST`).
    unfit_cost: float = B.UNFIT_COST
    #: The same for the input's own frames, with or without a profile (`B.INPUT_UNFIT_COST`).
    input_unfit_cost: float = B.INPUT_UNFIT_COST
    #: ... and of any mouth whose opening would be painted, times the paint's weight (`B.PAINT_COST`).
    paint_cost: float = B.PAINT_COST
    #: Weight of the mouth-width difference in the retrieval (`B.WIDTH_WEIGHT`).
    width_weight: float = B.WIDTH_WEIGHT
    #: What paints an opening no input frame can supply (`INTERIORS`): "painted" (the procedural
    #: `lipdub.render.interior.paint_interior`) or "learned" (the bundled
    #: `lipdub.render.learned_interior` network; the painted one if its weights cannot be loaded).
    #: Painted is the default by measurement: on closed-mouth photos the learned interior's smooth
    #: openings read as less open to Face Mesh (render r, aperture r) and are less sharp
    #: (docs/model-card.md, "Mouth interior"), although it is twice as close to real mouths.
    interior: str = "painted"
    #: Frames of a batch drawn at once, in threads (OpenCV's warps and blends release the GIL, so
    #: two threads keep both cores busy while the encoder thread waits for frames). 1: in turn.
    render_threads: int = 2
    #: Look for hands near the face while tracking (`lipdub.face.hands`) and keep their pixels:
    #: a hand is never warped, painted over or wiped off by a held pause. False saves the hand
    #: landmarker's ~8-14 ms a frame on inputs known to show no hands.
    keep_hands: bool = True
    #: Times the articulation scale the engine measures (a video's own range of motion, a photo's
    #: the training speakers' median): 1.3 opens and shapes the mouth 30 % more for the same speech.
    #: The speaker's slow expression (smile, pose) is not scaled, only the speech's motion.
    articulation: float = 1.0


INTERIORS = ("learned", "painted")
#: The mouth width `keep_unclosable_openings` judges is averaged over this long: a grin builds in a
#: fraction of a second, and a one-second average still calls its first frames narrow.
GRIN_WIDTH_SECONDS = 0.5


def interior_painter(choice: str):
    """The learned interior network for ``choice`` "learned" (None, with a warning, if it cannot be
    loaded: the engine then paints), None for "painted"."""
    if choice not in INTERIORS:
        raise LipdubError(f"unknown interior {choice!r}; choose from {', '.join(INTERIORS)}")
    if choice == "painted":
        return None
    from lipdub.render.learned_interior import load_learned_interior

    try:
        return load_learned_interior()
    except LipdubError as error:
        logger.warning("%s; painting mouth interiors instead", error)
        return None


#: When a mouth closes, the lips are sampled up to this share of their thickness away from the
#: measured inner contour; when it opens, up to `OPENING_INSET` (see `lip_source`).
CLOSING_INSET = 0.3
OPENING_INSET = 0.2


def lip_source(points: np.ndarray, own: float, target: float, closing: float = CLOSING_INSET,
               opening: float = OPENING_INSET) -> np.ndarray:
    """Where to sample the lips of a frame whose mouth opening ``own`` must become ``target`` (eye
    units): the inner contour moved towards the outer one, in proportion to how much the mouth
    closes or opens.

    Face Mesh puts the inner lip contour of an open mouth on the lip's edge to within a pixel or
    two; closing the lips pulls that edge together, and whatever dark cavity pixels the contour
    included become a dark line between closed lips (``closing`` share at most). Opening a shut
    mouth pulls the seam where its lips met apart onto both new lip edges: a dark and a light line
    along the lower lip, staircased by the warp (`woman_flag_closeup` dubbed in Japanese, frame
    115); sampled up to ``opening`` of the lip's thickness into the lip, the seam stays between
    the lips, under the opening.
    """
    points = np.asarray(points, np.float64)
    if target > own and target > 0:
        share = opening * float(np.clip((target - own) / target, 0.0, 1.0))
    elif own > 0 and target < own:
        share = closing * float(np.clip((own - target) / own, 0.0, 1.0))
    else:
        return points
    moved = points.copy()
    inner, outer = list(S.LIP_INNER), list(S.LIP_OUTER)
    moved[inner] += share * (points[outer] - points[inner])
    return moved


def interior_source(points: np.ndarray, inset: float) -> np.ndarray:
    """The points whose inner-lip ring the borrowed opening is sampled inside: the ring pulled
    towards its own horizontal midline by ``inset`` of its height (0: as measured)."""
    points = np.asarray(points, np.float64)
    if inset <= 0:
        return points
    moved = points.copy()
    inner = list(S.LIP_INNER)
    ring = points[inner]
    moved[inner, 1] = ring[:, 1] + inset * (ring[:, 1].mean() - ring[:, 1])
    return moved


def own_interior_fits(own: float, target: float, slack: float = FIT_SLACK) -> bool:
    """Whether a frame's own mouth opening (eye units) can be warped to the target's
    (`lipdub.render.interior.opening_fits`)."""
    return bool(opening_fits(own, target, slack))


def displacement_weights(layout: np.ndarray, lower: np.ndarray, motion_points: tuple[int, ...],
                         falloff: float = FALLOFF_EYE_UNITS) -> tuple[np.ndarray, np.ndarray]:
    """(followers, W): lower-face mesh points that are not motion points follow the motion points.

    W[f, m] = normalised Gaussian weight of motion point m for follower f (distance along the
    mesh surface in the canonical layout, `lipdub.render.mesh.surface_distances`), times a fade
    from 0 at the nose base to 1 one ``falloff`` below it, so points near the nose barely move and
    the warp meets the still upper face without a crease. The Gaussian's width is ``falloff`` far
    from the motion points and narrows near them (`NEAREST_WIDTH` times the distance to the nearest
    one, at least `MIN_FALLOFF_EYE_UNITS`): a point a hair from the lip contour moves with that
    stretch of contour, not with the average of the lip.

    Why along the surface: the lips' middle points (between the inner and outer contours) are
    followers. Measured straight, the upper lip's lies 0.08 eye units from the *lower* inner lip, and
    opening the mouth pulled it down while its own inner edge went up: thin lip triangles turned
    inside out (25-45 of the lower face's ~350 on a real clip), and a folded warp draws a seam.
    Along the surface the lower lip is a mouth corner away, so each lip follows itself; with the
    narrowing width, a synthetic opening of the sample photo's mouth (0.12 eye units, tapered to the
    corners) turns none of its lip triangles over (straight distances: 34, surface alone: 14).
    """
    layout = np.asarray(layout, np.float64)
    motion = np.asarray(motion_points)
    followers = np.array([v for v in np.flatnonzero(lower) if v not in set(motion_points)], np.int64)
    if len(followers) == 0:
        return followers, np.zeros((0, len(motion)))
    d = surface_distances(layout[:MESH_POINTS], motion)[:, followers].T
    width = np.clip(NEAREST_WIDTH * d.min(axis=1, keepdims=True), MIN_FALLOFF_EYE_UNITS, falloff)
    w = np.exp(-0.5 * (d / width) ** 2)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-9)
    return followers, w * nose_fade(layout, falloff)[followers, None]


def nose_fade(layout: np.ndarray, falloff: float = FALLOFF_EYE_UNITS) -> np.ndarray:
    """(468,) 0 at and above the nose base, rising linearly to 1 one ``falloff`` below it.

    Two things fade in this way towards the still upper face. How far a follower moves with the
    motion points (`displacement_weights`), so the warp meets the nose without a crease. And how much
    of a hold frame's own layout a mesh point takes, the rest being the shown frame's
    (`MotionEngine.target_frame_points`): a hold frame lends its lips in its own layout (the shown
    frame's would tear them), but its nose base, placed by the head pose of the shown frame, sits a
    few pixels from where the shown frame's is when the head has tilted since; the still band above
    the nose base follows the shown frame, and triangles between the two were stretched into a torn
    nostril (woman_seated_vertical held through a 2.5 s pause, frames 176-190).
    """
    layout = np.asarray(layout, np.float64)[:MESH_POINTS]
    return np.clip((layout[:, 1] - layout[2, 1]) / falloff, 0.0, 1.0)


class MotionEngine:
    """`lipdub.engines.base.Engine`: motion model + mouth bank + piecewise-affine renderer.

    ``profile_bank``: a personalisation profile's mouths (`lipdub.render.profile_bank.ProfileBank`)
    to borrow openings from besides the input's own frames; None for the input's only.
    """

    name = "motion"

    def __init__(self, predictor, options: MotionEngineOptions = MotionEngineOptions(), profile_bank=None):
        self.predictor = predictor
        self.options = options
        self.interior = interior_painter(options.interior)  # None: painted
        self.sample_rate = 16000
        self.batch_size = options.batch_size
        self.model_name = predictor.name
        self._bank = B.MouthBank(profile_bank)
        self._stride = 1
        self.chosen_sources: np.ndarray | None = None  # input frame whose opening each output frame shows, or -1
        self.chosen_profile: np.ndarray | None = None  # profile mouth it shows instead, or -1
        self.target_aperture: list[float] | None = None  # per output frame, for `lipdub eval-set`
        self._hold_bank: np.ndarray | None = None  # per output frame: bank entry its pause holds, or -1
        self._hold_slit: np.ndarray | None = None  # per output frame: bank entry a held, slightly parted mouth borrows, or -1
        self._hold_weight: np.ndarray | None = None  # per output frame: 0..1 share of the hold frame
        # input frame -> (lower-face colours, whether the tracker started a new track there): `lipdub.render.occlusion`
        self._face_colours: dict[int, tuple[np.ndarray, bool]] = {}
        self._hands: dict[int, np.ndarray] = {}  # input frame -> (K, 21, 2) hands near its face, where any
        self._hand_touched: np.ndarray | None = None  # per input frame: a hand over its lower face
        self._covered: np.ndarray | None = None  # per input frame: the colour test says something covers its mouth
        self._occluded_entries: np.ndarray | None = None  # per bank entry: its mouth is covered (colours or a hand)
        self._edit_weight: np.ndarray | None = None  # per output frame: 0..1 share of the edit (0: the input as it is)
        self._anticipated = None  # an early motion prediction (`anticipate`)
        self._loop = None  # a live video avatar's per-input-frame plan (`use_live_motion`), made on first use
        self._live_after = None  # the bank entry a live stream's last frame borrowed: its next piece carries on
        self._live_hold = LiveHold()  # a live stream's pause hold, carried from piece to piece
        self._hold_candidates: HoldCandidates | None = None  # `hold_candidates`, per prepared input
        self._pool = None  # render threads, made on first use

    @property
    def wants_hands(self) -> bool:
        """Whether the tracking pass should look for hands (`TrackedFace.hands`)."""
        return self.options.keep_hands

    @property
    def reads_lips(self) -> bool:
        """Whether this engine moves pixels where the tracker says the lips are: the tracking pass
        then checks that Face Mesh can read them (`lipdub.face.lip_retest`)."""
        return True

    # -- tracking pass -------------------------------------------------------------------------
    def anticipate(self, speech: np.ndarray, frames: int, fps: float) -> None:
        """Start predicting the motion of the speech the output will most likely carry (see
        `lipdub.motion.predictor.AnticipatedMotion`); `prepare` uses it if the guess was right."""
        from lipdub.motion.predictor import AnticipatedMotion

        self._anticipated = AnticipatedMotion(self.predictor, speech, frames, fps)

    def expect_frames(self, count: int) -> None:
        """Thin the bank to `bank_capacity` frames for inputs longer than that."""
        self._stride = max(1, -(-count // max(1, self.options.bank_capacity)))

    def observe(self, index: int, image: np.ndarray, face) -> None:
        """Keep frame ``index``'s lower face in the mouth bank, and its colours for the occlusion
        test. Thread-safe; the last call for an index wins (see `lipdub.engines.base`)."""
        points = None
        hands = None if face is None else getattr(face, "hands", None)
        if hands is not None and len(hands):
            self._hands[index] = np.asarray(hands, np.float32)
        else:
            self._hands.pop(index, None)
        if face is None:
            self._face_colours.pop(index, None)
        else:
            points = np.asarray(face.landmarks if face.raw_landmarks is None else face.raw_landmarks, np.float64)
            self._face_colours[index] = (face_colours(image, points).astype(np.float32),
                                         bool(getattr(face, "is_new_track", False)))
        if index % self._stride:
            return
        rect = None
        if points is not None:
            rect = bounding_rect(_lower_region(points), image.shape, BANK_MARGIN)
        if rect is None:
            self._bank.discard_input(index)
            return
        x1, y1, x2, y2 = rect
        self._bank.add_input(index, image[y1:y2, x1:x2], (x1, y1))

    # -- planning --------------------------------------------------------------------------------
    def prepare(self, plan: RenderPlan) -> None:
        count = len(plan.faces)
        # Smoothed landmarks place the head (canonical frame) and the slow expression; the raw ones
        # say where each frame's pixels are, so the warp samples lips where they really are.
        landmarks = np.full((count, 478, 2), np.nan)
        raw = np.full((count, 478, 2), np.nan)
        for j, face in enumerate(plan.faces):
            if face is not None:
                landmarks[j] = face.landmarks
                raw[j] = face.landmarks if face.raw_landmarks is None else face.raw_landmarks
        self._landmarks = raw
        self._transforms, self._canonical = S.canonical_mesh(landmarks, raw, MESH_POINTS)  # (N, 468, 2)
        smoothed_shapes = S.apply_affine(self._transforms, landmarks[:, list(S.MOTION_POINTS)])
        shapes = self._canonical[:, list(S.MOTION_POINTS)]
        # A video's rest is its most closed mouth of the moment (lips brought together for a model
        # trained so); a photo's, its lips (nearly) together.
        moment = S.rest_track(smoothed_shapes, plan.fps) if count > 1 else None
        rest = (S.rest_of_moment(moment, self.predictor.rest) if moment is not None
                else S.photo_rest(smoothed_shapes))
        measured = None if plan.is_photo else S.articulation_scale(
            S.speech_motion(smoothed_shapes, rest)[np.isfinite(smoothed_shapes).all(axis=(1, 2))])
        if moment is not None and self.predictor.rest == "closed":
            # A grin wider than any closed mouth of the video keeps its opening (the scale above was
            # measured on the closed rest the model was trained with).
            slow_width = S.moving_average(S.mouth_width(smoothed_shapes),
                                          max(1, int(round(GRIN_WIDTH_SECONDS * plan.fps))))
            grin_share = S.unclosable_share(moment, slow_width, S.widest_closed_width(shapes))
            rest = S.keep_unclosable_openings(rest, moment, grin_share)
        else:
            grin_share = np.zeros(count)
        self.scale = speaker_scale(measured, self.predictor.default_scale) * self.options.articulation
        logger.info("articulation scale %.3f (input measured %s, model default %.3f, times %.2f)", self.scale,
                    "n/a" if measured is None else f"{measured:.3f}", self.predictor.default_scale,
                    self.options.articulation)

        frames = plan.timeline.output_frames
        self._sources = np.array([plan.timeline.source_index(i) for i in range(frames)], np.int64)
        self._has_face = np.array([plan.faces[j] is not None for j in self._sources], bool)
        self._shapes, self._rest, self._fps = shapes, rest, plan.fps
        self._smoothed_shapes, self._grin_share = smoothed_shapes, grin_share
        self._loop, self._live_after, self._live_hold = None, None, LiveHold()
        self._hold_candidates = None  # made on first use, once the bank and its covered entries are known
        self._eye = np.linalg.norm(raw[:, S.RIGHT_EYE_OUTER] - raw[:, S.LEFT_EYE_OUTER], axis=-1)
        layout = np.nanmedian(self._canonical, axis=0)
        self._mesh = build_mesh(layout)
        self._followers, self._follow_weights = displacement_weights(layout, self._mesh.lower, S.MOTION_POINTS)
        self._hold_layout = nose_fade(layout)
        self._band = np.flatnonzero(self._mesh.band)
        self._movable = np.zeros(self._mesh.vertex_count, bool)  # what `unfold` may move: the followers
        self._movable[self._followers] = True
        self._pose = B.pose_features(self._canonical)
        faced = np.isfinite(self._pose).all(axis=1) & np.isfinite(rest).all(axis=(1, 2))
        self._bank.place(raw, self._canonical, np.median(rest[faced], axis=0) if faced.any() else rest[0],
                         np.median(self._pose[faced], axis=0) if faced.any() else self._pose[0],
                         rest_kind=self.predictor.rest)
        self._bank_frames = self._bank.frames
        scores = self._occlusion_scores(count)
        covered = self._covered = occluded(scores)
        if covered.any():
            logger.info("%d of %d input frames look covered (a hand or an object before the mouth): "
                        "never lent, and shown as they are", int(covered.sum()), count)
        self._hand_touched = self._frames_touched_by_hands(raw, scores)
        # A hand over the lips must neither be lent with the opening nor held on.
        self._occluded_entries = np.array([0 <= f < count and (covered[f] or self._hand_touched[f] >= 2)
                                           for f in self._bank_frames], bool)

        early = self._anticipated.take(plan.speech, frames, plan.fps) if self._anticipated is not None else None
        self._anticipated = None
        motion, gate = early if early is not None else self.predictor.predict_with_gate(plan.speech, frames, plan.fps)
        targets = target_shapes(rest[self._sources], S.hold_raised_upper_lip(motion, grin_share[self._sources]),
                                self.scale)
        if not plan.is_photo:
            targets = keep_slow_expression(targets, smoothed_shapes[self._sources], plan.fps)
            nose_base = self._canonical[:, list(POSE_POINTS)].mean(axis=1)[self._sources]  # per input frame, then shown
            targets = follow_fast_pose(targets, nose_base, plan.fps)
        self._edit_weight = None
        self.use_targets(targets)
        if not plan.is_photo:
            self.hold_pauses(gate)
            self._leave_covered_frames(covered)

    def _occlusion_scores(self, count: int) -> np.ndarray:
        """(count,) per input frame, the share of its lower-face colours that something seems to
        cover (`lipdub.render.occlusion`), judged shot by shot (a new track starts a shot)."""
        colours = np.full((count, len(LOWER_FACE_POINTS), 3), np.nan)
        new_shot = np.zeros(count, bool)
        for index, (values, new_track) in list(self._face_colours.items()):
            if index < count:
                colours[index], new_shot[index] = values, new_track
        window = max(1, int(round(WINDOW_SECONDS * self._fps)))
        return occlusion_scores(colours, np.cumsum(new_shot), window)

    def _frames_touched_by_hands(self, raw: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """(count,) per input frame: 0 no hand on the face; 1 a hand on the lower face, not by the
        mouth (as a pause's hold frame, its hand's place is drawn from the frame shown:
        `_without_hold_hands`); 2 a hand over the lips (never held on, its opening never lent).

        Hands found on the face itself where the colours say nothing covers it are taken for the
        face and forgotten (removed from ``self._hands``), so they are not kept when drawing either."""
        touched = np.zeros(len(raw), np.int8)
        dropped = 0
        for index, hands in list(self._hands.items()):
            if index >= len(raw) or not np.isfinite(raw[index]).all():
                continue
            if not scores[index] >= HAND_ON_FACE_SCORE:  # NaN too: no colours to confirm it
                beside = hands_beside_face(hands, raw[index, list(FACE_OVAL)])
                dropped += len(hands) - len(beside)
                if not len(beside):
                    del self._hands[index]
                    continue
                self._hands[index] = hands = beside
            grow = HAND_MARGIN_EYE_UNITS * float(self._eye[index])
            if hands_cover(hands, raw[index, list(LOWER_FACE_OUTLINE)], grow) > 0:
                touched[index] = 1
                if hands_cover(hands, raw[index, list(S.LIP_OUTER)], grow) > 0:
                    touched[index] = 2
        if dropped:
            logger.info("%d hand(s) found on the face itself with its colours unchanged: taken for the face", dropped)
        if touched.any():
            logger.info("%d of %d input frames have a hand on the lower face, kept as it is (%d over the lips: "
                        "never lent nor held on)", int((touched > 0).sum()), len(raw), int((touched == 2).sum()))
        return touched

    def _leave_covered_frames(self, covered: np.ndarray) -> None:
        """Show output frames whose own input frame is covered as they are, fading the edit out
        and in over `FADE_SECONDS` beside them: warping a hand in front of the mouth bends its
        fingers, and holding a pause on another frame would wipe the hand off the face."""
        shown = covered[self._sources] & self._has_face
        if not shown.any():
            return
        frames = len(self._sources)
        fade = int(round(FADE_SECONDS * self._fps))
        grown = [(max(0, a - fade), min(frames, b + fade)) for a, b in runs_of(shown)]
        weight = 1.0 - hold_weights(frames, grown, fade)
        self._edit_weight = morph_fades(weight, self._targets, self.own_shapes(), self._hold_weight)


    def _clear_holds(self, frames: int) -> None:
        """No output frame of ``frames`` held (yet): `hold_pauses` and `live_holds` fill these in."""
        self._hold_bank = np.full(frames, -1, np.int64)
        self._hold_weight = np.zeros(frames)
        self._hold_slit = np.full(frames, -1, np.int64)

    def hold_candidates(self) -> HoldCandidates:
        """What a hold chooses among (`HoldCandidates`), measured once per `prepare`: a dub asks
        once, a live video avatar at every piece."""
        if self._hold_candidates is None:
            # A pause holds one of the input's own closed mouths: its skin is about to be shown.
            openings = np.where(self._bank.from_input, self._bank.openings, np.nan)
            if self._occluded_entries is not None:
                openings[self._occluded_entries] = np.nan  # a covered mouth reads shut: never hold on it
            yaw = head_yaw(self._canonical)  # per input frame
            bank_yaw = np.where(self._bank_frames >= 0, yaw[np.clip(self._bank_frames, 0, len(yaw) - 1)], np.nan)
            widths = S.mouth_width(self._bank.shapes)
            for array in (openings, yaw, bank_yaw, widths):
                array.setflags(write=False)  # shared by every hold: never changed in place
            self._hold_candidates = HoldCandidates(openings, yaw, bank_yaw, widths)
        return self._hold_candidates

    def hold_pauses(self, gate: np.ndarray) -> None:
        """Give every pause of the speech (``gate`` shut, `lipdub.render.hold`), and every run of
        frames that must shut a wide-open mouth (`closing_runs`), one hold frame."""
        frames = len(self._sources)
        self._clear_holds(frames)
        if not self._bank.from_input.any():
            return
        fade = int(round(FADE_SECONDS * self._fps))
        pauses = pause_runs(gate, self._fps)
        own_open = np.where(self._has_face, S.aperture(self._shapes[self._sources]), np.nan)
        targets_open = S.aperture(self._targets)
        targets_width = S.mouth_width(self._targets)
        closing = closing_runs(own_open, targets_open, fade)
        candidates = self.hold_candidates()
        bank_widths = candidates.widths
        held = np.zeros(frames, bool)
        for a, b in pauses + closing:
            held[a:b] = True
        runs = runs_of(held)
        openings, yaw, bank_yaw = candidates.openings, candidates.yaw, candidates.bank_yaw
        reach = SEARCH_SECONDS * self._fps
        exclude = None if self.options.exclude_seconds is None else self.options.exclude_seconds * self._fps
        kept = []
        for a, b in runs:
            sources = self._sources[a:b][self._has_face[a:b]]
            if not len(sources):
                continue
            allowed = openings.copy()
            if exclude is not None:  # evaluation: never the real mouth of the moment
                near = np.abs(self._bank_frames[:, None] - sources[None, :]).min(axis=1) <= exclude
                allowed[near] = np.nan
            pick = choose_hold_frame(self._bank_frames, allowed, float(np.median(sources)),
                                     reach + 0.5 * float(np.ptp(sources)))
            in_pause = any(a < d and c < b for c, d in pauses)

            def acceptable(pick: int, a: int, b: int) -> bool:
                if pick >= 0 and not in_pause and openings[pick] > NEARLY_SHUT:
                    return False  # no closed mouth near enough to shut this one with: warp it shut instead
                if pick >= 0 and not fits_hold_width(float(bank_widths[pick]), targets_width[a:b]) \
                        and own_mouths_can_follow(own_open[a:b], targets_open[a:b]):
                    logger.info("frames %d-%d: no closed mouth as wide as their target to hold; drawn from their own", a, b)
                    return False
                return pick >= 0

            if not acceptable(pick, a, b):
                continue
            # A head that turns away from the hold frame gets a hold frame turned as it is, or none.
            shown_yaw = yaw[self._sources[a:b]]
            for c, d, fits in yaw_segments(shown_yaw, float(bank_yaw[pick]), min_frames=2 * fade + 1):
                segment = pick
                if not fits:
                    turned = np.where(np.abs(bank_yaw - np.nanmedian(shown_yaw[c:d])) <= 0.5 * HOLD_YAW_LIMIT, allowed, np.nan)
                    part = self._sources[a + c:a + d]
                    segment = choose_hold_frame(self._bank_frames, turned, float(np.median(part)),
                                                reach + 0.5 * float(np.ptp(part)))
                    if segment >= 0 and (np.abs(shown_yaw[c:d] - bank_yaw[segment]) > HOLD_YAW_LIMIT).any():
                        segment = -1
                    if not acceptable(segment, a + c, a + d):
                        logger.info("frames %d-%d: the head turns away from the hold frame and no closed mouth "
                                    "near is turned as it is; drawn from their own", a + c, a + d)
                        continue
                self._hold_run(a + c, a + d, segment, allowed, targets_open, targets_width, bank_widths)
                kept.append((a + c, a + d))
        self._hold_weight = hold_weights(frames, kept, fade)
        if kept:
            logger.info("holding %d pause(s) or closings on one closed mouth each (%d frames; %d closing runs)",
                        len(kept), sum(b - a for a, b in kept), len(closing))

    def _hold_run(self, a: int, b: int, pick: int, allowed: np.ndarray, targets_open: np.ndarray,
                  targets_width: np.ndarray, bank_widths: np.ndarray) -> None:
        """Hold output frames ``a..b`` on bank entry ``pick``, and choose the slightly open mouth
        they borrow where their target parts the lips (`choose_slit_frame`)."""
        logger.debug("frames %d-%d held on input frame %d", a, b, int(self._bank_frames[pick]))
        self._hold_bank[a:b] = pick
        parted = (targets_open[a:b] > B.CLOSED_TARGET) & (targets_open[a:b] <= NEARLY_SHUT)
        if parted.any():
            # Only the opening is lent, as the bank lends it to any frame: the whole input may.
            sources = self._sources[a:b][self._has_face[a:b]]
            self._hold_slit[a:b] = choose_slit_frame(
                self._bank_frames, allowed, float(np.median(sources)), float(max(np.ptp(self._bank_frames), 1)),
                targets_open[a:b][parted], bank_widths, float(np.median(targets_width[a:b][parted])))

    def own_shapes(self) -> np.ndarray:
        """(T, P, 2) canonical shapes of the input frames the output shows, as measured (unsmoothed):
        'no change' as targets."""
        return self._shapes[self._sources]

    def use_targets(self, targets: np.ndarray, after: int | None = None) -> None:
        """Render these (T, P, 2) canonical target shapes; picks each output frame's bank frame.

        `prepare` calls it with the predicted shapes; tests and retargeting tools may call it again.
        Pause holds (`hold_pauses`) belong to the speech `prepare` planned for, so this clears them.
        ``after``: the bank entry the frame before the first of these borrowed (a live stream's
        previous piece), which the path carries on from when that first frame has a face.
        """
        targets = np.asarray(targets, np.float64)
        self._targets = targets
        frames = len(targets)
        exclude = None
        if self.options.exclude_seconds is not None:
            exclude = int(round(self.options.exclude_seconds * self._fps))
        bank, has_face, sources = self._bank, self._has_face, self._sources
        chosen = np.full(frames, -1, np.int64)
        if has_face.any() and len(bank):
            own = bank.frames[bank.from_input]
            has_profile = not bank.from_input.all()
            if exclude is not None and not has_profile and np.ptp(own) <= 2 * exclude:
                logger.warning("input too short to exclude %.1f s around each frame; using the whole bank",
                               self.options.exclude_seconds)
                exclude = None
            rows = np.flatnonzero(has_face)
            wanted = S.aperture(targets[rows])
            unfit = np.where(bank.from_input, self.options.input_unfit_cost, self.options.unfit_cost)

            def choose(start: int, stop: int, unfit_cost, paint_cost: float) -> np.ndarray:
                part = rows[start:stop]
                carry = after if part[0] == 0 and after is not None and after < len(bank) else None
                return B.choose_sources(
                    targets[part], self._pose[sources[part]], sources[part],
                    bank.shapes, bank.pose, bank.frames, exclude_within=exclude,
                    switch_cost=self.options.switch_cost,
                    pose_weight=bank.pose_weights(self.options.pose_weight, self.options.profile_pose_weight),
                    bank_cost=bank.costs(self.options.profile_cost), centred=~bank.from_input,
                    fit=(bank.openings, wanted[start:stop], unfit_cost),
                    width_weight=self.options.width_weight, paint_cost=paint_cost, avoid=self._occluded_entries,
                    after=carry)

            picks = choose(0, len(rows), unfit, self.options.paint_cost)
            picks = B.repick_painted_runs(picks, bank.openings, wanted,
                                          lambda start, stop, cost: choose(start, stop, cost, cost))
            chosen[rows] = picks
        self._chosen = chosen
        picked = chosen >= 0
        self.chosen_sources = np.full(frames, -1, np.int64)
        self.chosen_sources[picked] = bank.frames[chosen[picked]]
        self.chosen_profile = np.full(frames, -1, np.int64)
        self.chosen_profile[picked] = bank.profile_indices[chosen[picked]]
        if len(bank) and not bank.from_input.all():
            logger.info("mouth bank: %d output frames may borrow a profile mouth, %d an input frame's",
                        int((self.chosen_profile >= 0).sum()), int((self.chosen_sources >= 0).sum()))
        self.target_aperture = [float("nan")] * frames
        self._hold_bank, self._hold_weight, self._hold_slit = None, None, None

    def use_live_motion(self, motion: np.ndarray, sources: np.ndarray | None = None,
                        gate: np.ndarray | None = None) -> None:
        """Make output frames 0..k-1 the next frames of a live avatar (`lipdub.live`), driven by
        ``motion`` (k, P, 2; articulation units, from `lipdub.motion.streaming.StreamingMotion`) at
        the speaker's scale; `render` then draws them.

        A photo (``sources`` None, after `prepare` with a photo plan): its rest shape plus the
        motion, as `prepare` makes a photo's targets. A video loop (``sources``: the input frame
        each output frame shows, after `prepare` with the loop's own frames and silence): each
        frame's rest shape with the loop's slow expression and fast head movement already applied
        (`live_loop_bases`; both are known in advance, whatever the speech), plus the motion. The
        bank path carries on from the previous piece's last choice, so a borrowed mouth does not
        jump at a piece boundary. ``gate``: the speech gate of these frames
        (`lipdub.motion.streaming.StreamingMotion.last_gate`); where it stays shut the loop's frames
        fade onto one closed frame of the loop, as a dub holds a pause, but causally (`live_holds`).
        """
        motion = np.asarray(motion, np.float64)
        frames = len(motion)
        if sources is None:
            if len(self._shapes) != 1:
                raise LipdubError("live motion drives a photo: the plan had more than one input frame")
            self._sources = np.zeros(frames, np.int64)
            self._has_face = np.ones(frames, bool)
            self.use_targets(target_shapes(self._rest[self._sources], motion, self.scale))
            return
        sources = np.asarray(sources, np.int64)
        if len(sources) != frames:
            raise ValueError(f"{frames} frames of motion for {len(sources)} sources")
        if self._loop is None:
            self._loop = self.live_loop_bases()
        bases, has_face, edit = self._loop
        self._sources, self._has_face = sources, has_face[sources]
        targets = bases[sources] + self.scale * S.hold_raised_upper_lip(motion, self._grin_share[sources])
        self.use_targets(targets, after=self._live_after)
        self._edit_weight = None if edit is None else edit[sources]
        if frames and self._chosen[-1] >= 0:
            self._live_after = int(self._chosen[-1])
        if gate is not None:
            self.live_holds(np.asarray(gate, np.float64))

    def live_holds(self, gate: np.ndarray) -> None:
        """Pause holds of a live video avatar's next frames (after `use_live_motion` set their
        sources), carried on from the previous piece: once the gate has been shut for
        `MIN_HOLD_SECONDS` the frames fade onto the loop's most closed mouth near the frame shown
        (turned as it is: `HOLD_YAW_LIMIT`), and fade back when the speech comes again or the head
        turns away from it (`lipdub.render.hold.live_hold_step`). Without it a loop of someone
        talking goes on talking under the pause: its rest shapes carry its own speech. A frame
        whose own mouth is wide open where the target is shut (`closing_needed`) is held whole at
        once, as a dub's closing runs are. A held frame whose target parts the lips a little
        borrows one real slightly open mouth for the rest of its hold (`choose_slit_frame`, chosen
        at the first such frame), as a dub's hold does."""
        frames = len(self._sources)
        self._clear_holds(frames)
        if not self._bank.from_input.any():
            return
        fade = int(round(FADE_SECONDS * self._fps))
        min_frames = max(1, int(round(MIN_HOLD_SECONDS * self._fps)))
        candidates = self.hold_candidates()  # the same for every piece: measured once
        openings, yaw, bank_yaw, bank_widths = candidates.openings, candidates.yaw, candidates.bank_yaw, candidates.widths
        targets_open = S.aperture(self._targets)
        closing = self._has_face & closing_needed(S.aperture(self._shapes[self._sources]), targets_open)
        parted = (targets_open > B.CLOSED_TARGET) & (targets_open <= NEARLY_SHUT)
        state = self._live_hold
        weight, run, pick, slit = state.weight, state.shut_run, state.entry, state.slit
        for i, j in enumerate(self._sources):
            shut = bool(gate[i] < GATE_SHUT_BELOW and self._has_face[i])
            if weight <= 0.0:
                pick, slit = -1, -1
            if pick < 0 and (closing[i] or (shut and run + 1 >= min_frames)):
                turned = np.where(np.abs(bank_yaw - yaw[j]) <= 0.5 * HOLD_YAW_LIMIT, openings, np.nan)
                pick = choose_hold_frame(self._bank_frames, turned, float(j), SEARCH_SECONDS * self._fps)
                if pick >= 0 and not openings[pick] <= NEARLY_SHUT:
                    pick = -1  # no closed mouth near enough to hold: the motion alone brings it to rest
            holdable = pick >= 0 and not abs(yaw[j] - bank_yaw[pick]) > HOLD_YAW_LIMIT
            weight, run = live_hold_step(weight, run, shut, holdable, min_frames, fade, at_once=bool(closing[i]))
            if pick >= 0 and weight > 0.0:
                self._hold_bank[i], self._hold_weight[i] = pick, weight
                if parted[i] and slit < 0:
                    slit = choose_slit_frame(self._bank_frames, openings, float(j), float(max(np.ptp(self._bank_frames), 1)),
                                             targets_open[i:i + 1], bank_widths, float(S.mouth_width(self._targets[i:i + 1])[0]))
                self._hold_slit[i] = slit
        self._live_hold = LiveHold(weight, run, pick, slit)

    def live_loop_bases(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(bases (N, P, 2), has_face (N,), edit weight (N,) or None) per input frame of a video
        `prepare`d on its own frames: the target each frame would get from silence (its rest shape,
        its slow expression kept, its fast head movement followed), whether it has a face, and the
        share of the edit drawn on it (0 on a covered mouth, fading beside it; None: 1 everywhere).
        Measured once over the video played forward; a loop played back and forth
        (`lipdub.live.ping_pong`) reads them by input frame."""
        if len(self._sources) != len(self._shapes) or (self._sources != np.arange(len(self._shapes))).any():
            raise LipdubError("a live video avatar is prepared on its own frames, each shown once in order")
        count = len(self._shapes)
        bases = target_shapes(self._rest, np.zeros_like(self._rest), self.scale)
        bases = keep_slow_expression(bases, self._smoothed_shapes, self._fps)
        bases = follow_fast_pose(bases, self._canonical[:, list(POSE_POINTS)].mean(axis=1), self._fps)
        edit = None if self._edit_weight is None else np.asarray(self._edit_weight, np.float64)[:count].copy()
        return bases, self._has_face.copy(), edit

    # -- drawing ---------------------------------------------------------------------------------
    def target_frame_points(self, output_index: int, base_frame: int | None = None) -> np.ndarray:
        """(468, 2) the output frame's target mesh in frame pixels (motion + followers moved).

        The points that are not motion points follow the motion from where they are in
        ``base_frame`` (default: the frame shown), the frame whose pixels will be warped: a pause's
        hold frame has its own lip layout, and moving the shown frame's would tear its lips. Towards
        the nose the layout blends into the shown frame's (`nose_fade`): the still band
        above the nose base is placed where the shown frame has it, and the two must meet.
        """
        j = self._sources[output_index]
        canonical = self._canonical[j].copy()
        if base_frame is not None and base_frame != j:
            base = self._canonical[base_frame]
            canonical += self._hold_layout[:, None] * (base - canonical)
        motion_ids = list(S.MOTION_POINTS)
        delta = self._targets[output_index] - canonical[motion_ids]
        canonical[motion_ids] = self._targets[output_index]
        if len(self._followers):
            canonical[self._followers] += self._follow_weights @ delta
        return S.apply_affine(S.invert_affine(self._transforms[j]), canonical)

    def render(self, jobs: list[FrameJob]) -> list[np.ndarray]:
        """The batch's frames, in order; drawn `render_threads` at a time (each frame writes only
        its own entries of the per-frame records)."""
        if self.options.render_threads <= 1 or len(jobs) <= 1:
            return [self._render_one(job) for job in jobs]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.options.render_threads, thread_name_prefix="lipdub-render")
        return list(self._pool.map(self._render_one, jobs))

    def _render_one(self, job: FrameJob) -> np.ndarray:
        i = job.index
        edit = 1.0 if self._edit_weight is None else float(self._edit_weight[i])
        if job.face is None or edit <= 0.0:
            return job.image
        drawn = self._render_edited(job)
        if edit >= 1.0:
            return drawn
        return cv2.addWeighted(drawn, edit, job.image, 1.0 - edit, 0.0)

    def _render_edited(self, job: FrameJob) -> np.ndarray:
        i, j = job.index, job.source_index
        weight = float(self._hold_weight[i]) if self._hold_weight is not None else 0.0
        if weight <= 0.0 or self._hold_bank[i] < 0:
            return self._draw(job, j, job.image, (0, 0))
        hold = self._bank.entry(self._hold_bank[i])
        held = self._draw(job, hold.frame, hold.crop, hold.origin)
        own = None
        if weight < 1.0:
            own = self._draw(job, j, job.image, (0, 0))
            held = cv2.addWeighted(own, 1.0 - weight, held, weight, 0.0)  # uint8 in one pass: a whole frame
        return self._without_hold_hands(job, hold.frame, held, own)

    def _without_hold_hands(self, job: FrameJob, hold_frame: int, held: np.ndarray, own: np.ndarray | None) -> np.ndarray:
        """``held`` with the hold frame's own hand (one on its lower face, not by its mouth: see
        `_frames_touched_by_hands`), moved with the face onto this frame, drawn instead from this
        frame's own pixels (``own``: its draw without the hold, made here if None)."""
        hands = self._hands.get(hold_frame)
        j = job.source_index
        if hands is None or hold_frame == j:
            return held
        onto = S.apply_affine(S.invert_affine(self._transforms[j]), S.apply_affine(self._transforms[hold_frame], hands))
        eye = float(self._eye[j])
        margin, feather = HAND_MARGIN_EYE_UNITS * eye, HAND_FEATHER_EYE_UNITS * eye
        rect = bounding_rect(onto.reshape(-1, 2), held.shape, int(np.ceil(margin + 2 * feather + max(finger_half_width(h) for h in onto))) + 2)
        if rect is None:
            return held
        x1, y1, x2, y2 = rect
        weights = hand_keep_weights(onto, (y2 - y1, x2 - x1), (x1, y1), margin, feather)
        if not weights.any():
            return held
        own = self._draw(job, j, job.image, (0, 0)) if own is None else own
        out = held.copy()
        out[y1:y2, x1:x2] = cv2.blendLinear(np.ascontiguousarray(own[y1:y2, x1:x2]),
                                            np.ascontiguousarray(held[y1:y2, x1:x2]), weights, 1.0 - weights)
        return out

    def _draw(self, job: FrameJob, lips_frame: int, lips_image: np.ndarray, lips_origin: tuple[int, int]) -> np.ndarray:
        """Output frame ``job.index`` with its skin and lips taken from input frame ``lips_frame``
        (its own frame, or a pause's hold frame), whose pixels ``lips_image`` (a crop whose top-left
        is frame pixel ``lips_origin``) holds."""
        i, j = job.index, job.source_index
        frame_points = np.asarray(self._landmarks[j], np.float64)
        lips_points = np.asarray(self._landmarks[lips_frame], np.float64)
        target = self.target_frame_points(i, None if lips_frame == j else lips_frame)
        target[self._band] = frame_points[self._band]  # still: a hold frame's nose lands on this one's
        self.target_aperture[i] = float(mouth_aperture(target[None])[0])
        opening_target = float(S.aperture(self._targets[i][None])[0])
        opening_own = float(S.aperture(self._shapes[lips_frame][None])[0])
        lips_sampled = lip_source(lips_points, opening_own, opening_target)
        source_vertices = warp_vertices(lips_sampled, self._mesh)
        # Skin the motion drags over its neighbours is relaxed first: a turned-over triangle draws a sliver.
        target_vertices = unfold(source_vertices, warp_vertices(target, self._mesh, ring_from=frame_points),
                                 self._mesh.surface, self._movable)
        rect = bounding_rect(np.concatenate([target_vertices, _lower_region(frame_points)]), job.image.shape, 2)
        if rect is None:
            return job.image
        x1, y1, x2, y2 = rect
        # 1. Skin and lips: the frame's own pixels (or the hold frame's), moved onto the target shape.
        patch, covered = warp_patch(lips_image, lips_origin, source_vertices, target_vertices,
                                    self._mesh.surface, rect)
        # 2. The opening: the lips frame's own when it is open enough (and allowed), else a bank mouth's.
        # A hold frame keeps its own while the target is (nearly) shut: a still mouth must not switch
        # interiors. Held through a yawn's speech (`closing_runs`), its closed mouth opens onto a bank mouth.
        held = lips_frame != j
        # A hold whose target parts the lips a little borrows a real slightly open mouth near it
        # (`choose_slit_frame`): one per hold, so the still mouth keeps one interior.
        borrow = self._chosen[i]
        if held:
            own_allowed = opening_target <= NEARLY_SHUT or own_interior_fits(opening_own, opening_target)
            slit = self._hold_slit[i]
            if not own_interior_fits(opening_own, opening_target) and slit >= 0 \
                    and opening_fits(self._bank.openings[slit], opening_target):
                own_allowed, borrow = False, slit
        else:
            own_allowed = self.options.exclude_seconds is None and own_interior_fits(opening_own, opening_target)
        if own_allowed or borrow < 0:
            source = B.BankEntry(lips_image, lips_origin, lips_points, self._shapes[lips_frame], opening_own, lips_frame)
        else:
            source = self._bank.entry(borrow)
        self.chosen_sources[i], self.chosen_profile[i] = source.frame, source.profile_index
        crop, origin, source_points = source.crop, source.origin, np.asarray(source.points, np.float64)
        # The opening is small: warp only its own box, then place it in the patch.
        inner_rect = bounding_rect(target[list(S.LIP_INNER)], job.image.shape, 2)
        interior, inside = patch.copy(), np.zeros(patch.shape[:2], bool)
        box = None  # where, in patch pixels, the borrowed opening was placed
        if inner_rect is not None:
            ix1, iy1, ix2, iy2 = inner_rect
            ix1, iy1, ix2, iy2 = max(ix1, x1), max(iy1, y1), min(ix2, x2), min(iy2, y2)
            if ix2 > ix1 and iy2 > iy1:
                small, small_inside = warp_patch(crop, origin, warp_vertices(interior_source(source_points, source.inset), self._mesh),
                                                 target_vertices, self._mesh.interior, (ix1, iy1, ix2, iy2))
                box = (slice(iy1 - y1, iy2 - y1), slice(ix1 - x1, ix2 - x1))
                interior[box] = small
                inside[box] = small_inside
        inner = target[list(S.LIP_INNER)]
        # The lips' colour where they really are in the pixels shown (the lips frame's own rings, their
        # outer half): sampled at the target's rings, or next to an inner ring the tracker put on the
        # teeth, the lips take in enamel and read pale, and the borrowed cavity was brightened to match.
        def lips_colour() -> np.ndarray:  # sampled only when a borrowed or painted opening needs it
            return lip_colour(lips_image, lips_points[list(S.LIP_OUTER)] - lips_origin,
                              lips_points[list(S.LIP_INNER)] - lips_origin, LIP_SAMPLE_DEPTH)

        lips = None
        if source.frame != lips_frame and self.options.color_match:
            lips = lips_colour()
            # Another frame, maybe other light (another video's, for a profile's mouth): scale the
            # borrowed cavity by the lips' colour ratio, within the range the entry allows.
            theirs = lip_colour(crop, source_points[list(S.LIP_OUTER)] - origin, source_points[list(S.LIP_INNER)] - origin,
                                LIP_SAMPLE_DEPTH)
            gain = np.clip(lips / np.maximum(theirs, 1.0), *source.gain_range)
            if box is not None:  # only the borrowed pixels: the rest of the patch is this frame's
                interior[box] = np.clip(interior[box] * gain + 0.5, 0, 255).astype(np.uint8)
        painted_weight = interior_alpha(source.opening, opening_target)
        if painted_weight > 0:
            eye = float(self._eye[j])
            if self.interior is not None:
                # The network also repaints the lips' inner edge (its hole is the opening grown by a
                # few pixels), which is where a stretched warp leaves its seam.
                painted, alpha = self.interior.paint(interior, (x1, y1), inner, target[list(S.LIP_OUTER)], eye)
                inside |= alpha > 0
            else:
                eyes = [frame_points[list(ring)] for ring in (RIGHT_EYE_RING, LEFT_EYE_RING)]
                lips = lips_colour() if lips is None else lips
                painted, alpha = paint_interior(interior, (x1, y1), inner, lips, eye, teeth_colour(job.image, eyes, lips))
                if box is not None and source.opening >= B.CLOSED_TARGET:
                    # The source's own opening (a photo's teeth), at its own size under the upper lip,
                    # over the painted cavity: the paint fills only what the jaw opened beyond it.
                    self._keep_own_teeth(painted, box, (ix1, iy1, ix2, iy2), target, frame_points, source,
                                         eye, gain if source.frame != lips_frame and self.options.color_match else None)
            # Blend only where the paint reaches (a small box of the lower-face patch).
            bx, by, bw, bh = cv2.boundingRect((alpha > 0).astype(np.uint8))
            if bw and bh:
                part = (slice(by, by + bh), slice(bx, bx + bw))
                a = (alpha[part] * painted_weight)[..., None]
                interior[part] = np.clip(interior[part] * (1.0 - a) + painted[part] * a + 0.5, 0, 255).astype(np.uint8)
        patch = paste_antialiased(patch, interior, inside)
        covered = covered | inside

        region = job.image[y1:y2, x1:x2]
        mask = self._mask(target, frame_points, rect, float(self._eye[j]))
        # A hold frame's skin meets the frame's own inside the mask: fade it out before the edge.
        mask = mask * (inner_feather(covered, FEATHER_EYE_UNITS * float(self._eye[j])) if held else covered)
        hands = self._hands.get(j)
        if hands is not None:  # a hand in front of the face stays as it is, the edit fading out beside it
            eye = float(self._eye[j])
            mask = mask * (1.0 - hand_keep_weights(hands, mask.shape, (x1, y1), HAND_MARGIN_EYE_UNITS * eye,
                                                   HAND_FEATHER_EYE_UNITS * eye))
        out = job.image.copy()
        mask = np.ascontiguousarray(mask, np.float32)
        # Weights of exactly 0 give the input's pixel back unchanged (identity outside the mask).
        out[y1:y2, x1:x2] = cv2.blendLinear(np.ascontiguousarray(patch), np.ascontiguousarray(region), mask, 1.0 - mask)
        return out

    def _keep_own_teeth(self, painted: np.ndarray, box, inner_rect, target: np.ndarray, frame_points: np.ndarray,
                        source: B.BankEntry, eye: float, gain: np.ndarray | None) -> None:
        """Warp ``source``'s opening onto the target ring with its own gaps (`anchored_inner_ring`)
        and lay it over ``painted`` (patch-sized) in place, its edge softened by a pixel."""
        points = np.asarray(source.points, np.float64)
        source_eye = float(np.linalg.norm(points[S.RIGHT_EYE_OUTER] - points[S.LEFT_EYE_OUTER]))
        inner = list(S.LIP_INNER)
        anchored = target.copy()
        anchored[inner] = anchored_inner_ring(target[inner], points[inner], eye / max(source_eye, 1e-6))
        teeth, teeth_inside = warp_patch(source.crop, source.origin,
                                         warp_vertices(interior_source(points, source.inset), self._mesh),
                                         warp_vertices(anchored, self._mesh, ring_from=frame_points),
                                         self._mesh.interior, inner_rect)
        if not teeth_inside.any():
            return
        if gain is not None:
            teeth = np.clip(teeth * gain + 0.5, 0, 255).astype(np.uint8)
        weight = cv2.GaussianBlur(teeth_inside.astype(np.float32), (0, 0), max(0.6, eye / 250.0))
        weight = np.minimum(weight, teeth_inside.astype(np.float32))[..., None]  # soft inside, none outside
        region = painted[box]
        painted[box] = np.clip(region * (1.0 - weight) + teeth * weight + 0.5, 0, 255).astype(np.uint8)

    def _mask(self, target: np.ndarray, frame_points: np.ndarray, rect, eye: float) -> np.ndarray:
        """Soft mask (rect-sized) over the union of the target and input lower faces."""
        x1, y1, x2, y2 = rect
        lift = 0.5 * FEATHER_EYE_UNITS * eye
        polygons = [raised_outline(points, lift) - (x1, y1) for points in (target, frame_points)]
        return feathered_polygons(polygons, (y2 - y1, x2 - x1), FEATHER_EYE_UNITS * eye)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._bank.close()


#: Share of the lip band, from the outer contour in, whose colour matches a borrowed cavity to the
#: frame (`lipdub.render.interior.lip_colour`). The whole band, on man_bald_beard_couch (tracked
#: inner lips on his teeth), read 10-20 % paler in green and blue on frames showing more teeth, and
#: the borrowed teeth were brightened into a white smear.
LIP_SAMPLE_DEPTH = 0.5

#: Pixels around a hand that keep the input's (its landmarks' error, a finger's blur), in eye units.
HAND_MARGIN_EYE_UNITS = 0.04
#: A hand whose palm lies on the face (`hands_beside_face`) is believed only where the occlusion
#: test's score (`lipdub.render.occlusion`) reaches this: the landmarker took cheeks and noses for
#: hands on faces with none (see `lipdub.face.hands.MIN_CONFIDENCE`).
HAND_ON_FACE_SCORE = 0.1
#: ... and over which the edit fades in beyond that: a finger's edge is a strong edge of its own, so
#: a narrow fade hides the seam, and a wide one (the mask's `FEATHER_EYE_UNITS`) showed the input's
#: open mouth beside a fingertip at the lip corner (debate clip, frame 8).
HAND_FEATHER_EYE_UNITS = 0.06

#: The points of `LOWER_FACE_OUTLINE` that run under the nose (its last five).
UNDER_NOSE = 5


def morph_fades(edit_weight: np.ndarray, targets: np.ndarray, own: np.ndarray, hold_weight: np.ndarray | None) -> np.ndarray:
    """Turn the cross-fades of ``edit_weight`` (T,) into morphs, in place; returns the new weights.

    Beside a frame shown as it is (covered: `MotionEngine._leave_covered_frames`) the edit used to
    fade in as a cross-fade of two pictures: the input's own mouth and the edited one, open and
    held shut, drawn over each other as a double lip (tv_debate_two_men dubbed with Spanish, frame 8,
    beside the fingers at his chin). Now a fading frame is drawn whole (weight 1) with its target
    shape (``targets``, (T, P, 2), changed in place) moved only that share of the way from its own
    shape (``own``) and its hold frame's share (``hold_weight``, in place) scaled alike: the mouth
    moves from the input's shape to the dub's over the fade, one mouth in every frame.
    """
    edit_weight = np.asarray(edit_weight, np.float64).copy()
    fading = np.flatnonzero((edit_weight > 0.0) & (edit_weight < 1.0))
    if len(fading):
        share = edit_weight[fading][:, None, None]
        targets[fading] = own[fading] + share * (targets[fading] - own[fading])
        if hold_weight is not None:
            hold_weight[fading] *= edit_weight[fading]
        edit_weight[fading] = 1.0
    return edit_weight


def raised_outline(points: np.ndarray, lift: float) -> np.ndarray:
    """The lower-face outline (`LOWER_FACE_OUTLINE`) of (468+, 2) frame points, its stretch under
    the nose moved ``lift`` pixels up the face (from the chin, 152, towards the nose base, 2).

    The mask's soft edge is centred on the outline: left under the nose, the mask reached full
    strength only half a feather below the nose base, and whatever sat in that band (a grimace's
    raised upper lip) was half the frame's own pixels: a ghost lip above the lip drawn. Lifted by
    half a feather, the mask is full from the nose base down; above it the warp moves nothing.
    """
    points = np.asarray(points, np.float64)
    outline = points[list(LOWER_FACE_OUTLINE)].copy()
    up = points[2] - points[152]
    norm = float(np.linalg.norm(up))
    if norm > 0:
        outline[-UNDER_NOSE:] += lift * up / norm
    return outline


def _lower_region(points: np.ndarray) -> np.ndarray:
    """Points that bound everything the warp may touch in a frame: lower face plus its ring."""
    from lipdub.render.mesh import LOWER_OVAL, NOSE_TIP, ring_points

    points = np.asarray(points, np.float64)
    return np.concatenate([points[list(LOWER_OVAL)], ring_points(points), points[[NOSE_TIP]]])


def load_engine(motion_model=None, options: MotionEngineOptions = MotionEngineOptions(),
                profile_bank=None) -> MotionEngine:
    """A motion engine with the bundled (or named) lip motion model and, optionally, a profile's mouths."""
    from lipdub.motion.predictor import load_motion_model

    return MotionEngine(load_motion_model(motion_model), options, profile_bank)


__all__ = ["INTERIORS", "MotionEngine", "MotionEngineOptions", "displacement_weights", "interior_painter", "load_engine"]
