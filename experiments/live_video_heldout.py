"""python experiments/live_video_heldout.py [OUT_DIR]

Cross-dub protocol, live, for a video avatar: validation clip A's first 10 s looped back and forth
(`lipdub.live.LiveAvatar` on a video) and driven by validation clip B's speech streamed in 40 ms pieces;
mouth-aperture r (lag 0 and best within +-5 frames) against B's real mouth (A's own mouth cannot leak into
it), beside the offline cross-dub of the same pair with the same causal model and with the default model
(`lipdub sync A B`, cut to the shorter). Writes OUT_DIR/results.json."""
import json, sys, numpy as np, torch
from pathlib import Path
torch.set_num_threads(1)
from lipdub.live import LiveAvatar
from lipdub.media.audio import load_audio, rechunk
from lipdub.eval.protocols import crossdub, crossdub_mouth, crossdub_pairs
from lipdub.eval.report import track_video
from lipdub.media.encode import VideoWriter
D = Path("../shared/data/train/real")
clips = [D / c for c in ("grid_man_denim.mpg", "grid_man_denim_1.mpg", "man_congressman_60s.mp4", "man_phone_film.mp4",
                         "man_restaurant_noisy.mp4", "woman_flag.mp4", "woman_flag_closeup.mp4", "woman_politician_uk.mp4",
                         "woman_seated_vertical.mp4")]
work = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/live-video-heldout"); work.mkdir(parents=True, exist_ok=True)
rows = []
for face, speech_clip in crossdub_pairs(clips):
    real = track_video(speech_clip)
    speech = load_audio(speech_clip)
    with LiveAvatar(face) as avatar:
        fps, frames = avatar.fps, []
        for piece in rechunk(iter([speech]), 640):
            frames += avatar.push(piece)
        frames += avatar.finish()
    out = work / f"{face.stem}__{speech_clip.stem}_live.mp4"
    with VideoWriter(out, frames[0].shape[1], frames[0].shape[0], fps, overwrite=True) as w:
        for f in frames:
            w.write(f)
    row = {"face": face.name, "speech": speech_clip.name}
    offline = {}
    for name, model in (("offline_causal", "lipdub-motion-causal"), ("offline_default", None)):
        result = crossdub(face, speech_clip, work / f"{face.stem}__{speech_clip.stem}_{name}.mp4", motion_model=model)
        offline[name] = track_video(result.output).landmark_array()
    n = min(len(v) for v in offline.values())  # the offline dubs stop at the shorter clip: compare the same frames
    live = track_video(out).landmark_array()[:n]
    for name, landmarks in (("live", live), *((k, v[:n]) for k, v in offline.items())):
        figures = crossdub_mouth(landmarks, fps, real.landmark_array(), real.fps)
        row[name + "_r0"], row[name + "_r"] = figures["aperture_r0"], figures["aperture_r"]
    rows.append(row)
    print(row, flush=True)
means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.endswith(("_r0", "_r"))}
print("mean", {k: round(v, 3) for k, v in means.items()})
(work / "results.json").write_text(json.dumps({"pairs": rows, "mean": means}, indent=1))
