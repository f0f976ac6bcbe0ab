"""python experiments/live_heldout.py [OUT_DIR]

Image protocol, live: each validation clip's first frame driven by its own speech, streamed in 40 ms
pieces; mouth-aperture r (lag 0 and best within +-5 frames) against the clip's real mouth, beside the offline
causal dub's (same photo, same speech)."""
import sys, numpy as np, torch, av, tempfile
from pathlib import Path
torch.set_num_threads(1)
from lipdub.live import LiveAvatar
from lipdub.media.audio import load_audio, rechunk
from lipdub.media.decode import probe_video
from lipdub.eval.protocols import first_frame_photo
from lipdub.eval.report import track_video
from lipdub.eval.mouth import mouth_aperture, aperture_correlation
from lipdub.media.encode import VideoWriter
from lipdub.pipeline import sync
D = Path("../shared/data/train/real")
clips = ["grid_man_denim.mpg", "grid_man_denim_1.mpg", "man_congressman_60s.mp4", "man_phone_film.mp4", "man_restaurant_noisy.mp4",
         "woman_flag.mp4", "woman_flag_closeup.mp4", "woman_politician_uk.mp4", "woman_seated_vertical.mp4"]
work = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/live-heldout"); work.mkdir(parents=True, exist_ok=True)
rows = []
for name in clips:
    clip = D / name
    fps = probe_video(clip).fps
    photo = first_frame_photo(clip, work / f"{clip.stem}.png")
    speech = load_audio(clip)
    real = mouth_aperture(track_video(clip).landmark_array())
    with LiveAvatar(photo, fps=fps) as a:
        frames = []
        for piece in rechunk(iter([speech]), 640):
            frames += a.push(piece)
        frames += a.finish()
    out = work / f"{clip.stem}_live.mp4"
    with VideoWriter(out, frames[0].shape[1], frames[0].shape[0], fps, overwrite=True) as w:
        for f in frames: w.write(f)
    live = mouth_aperture(track_video(out).landmark_array())
    off = sync(photo, clip, work / f"{clip.stem}_offline.mp4", photo_fps=fps, overwrite=True, motion_model="lipdub-motion-causal")
    offl = mouth_aperture(track_video(off.output).landmark_array())
    n = min(len(real), len(live), len(offl))
    cl, co = aperture_correlation(live[:n], real[:n]), aperture_correlation(offl[:n], real[:n])
    cl0, co0 = aperture_correlation(live[:n], real[:n], max_lag=0), aperture_correlation(offl[:n], real[:n], max_lag=0)
    rows.append((name, cl0.r, cl.r, co0.r, co.r))
    print(f"{name}: live r0 {cl0.r:.3f} best {cl.r:.3f} lag {cl.lag} | offline-causal r0 {co0.r:.3f} best {co.r:.3f} lag {co.lag}", flush=True)
m = np.mean([r[1:] for r in rows], axis=0)
print("mean: live r0 %.3f best %.3f | offline-causal r0 %.3f best %.3f" % tuple(m))
