#!/usr/bin/env bash
# The held-out figures of the default (motion) engine in docs/model-card.md, as project commands.
# Clips: the validation speakers of datasets/shared-v2 (never trained on; two of the 60 GRID
# sentences of grid_man_denim). Writes runs/motion-eval/<protocol>/ (reports, plots) and copies each
# table.md + results.json to docs/runs/motion-eval/<protocol>/.
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
VAL=(
  $D/train/real/grid_man_denim.mpg $D/train/real/grid_man_denim_1.mpg $D/train/real/man_bald_beard_couch.mp4
  $D/train/real/man_congressman_60s.mp4 $D/train/real/man_phone_film.mp4 $D/train/real/man_restaurant_noisy.mp4
  $D/train/real/woman_flag.mp4 $D/train/real/woman_flag_closeup.mp4 $D/train/real/woman_politician_uk.mp4
  $D/train/real/woman_seated_vertical.mp4
)
LANGS=(
  $D/audio/english_male_1.wav $D/audio/German1.wav $D/audio/french1.wav $D/audio/italian1.wav
  $D/audio/spanish1.wav $D/audio/japan1.wav $D/audio/korean1.wav $D/audio/chinese1_haierlizhi.wav
  $D/audio/eluosi.wav
)
mkdir -p runs/motion-eval out
python experiments/splice_pause.py $D/audio/english_male_1.wav $D/audio/english_female_1.wav --pause 2.5 \
  -o runs/motion-eval/pause_speech.wav
run() {  # run NAME ARGS...: one eval-set, its table kept in docs/runs
  local name=$1; shift
  lipdub eval-set "$@" -o runs/motion-eval/$name -q > /dev/null
  mkdir -p docs/runs/motion-eval/$name
  cp runs/motion-eval/$name/table.md runs/motion-eval/$name/results.json docs/runs/motion-eval/$name/
  echo "== $name"; tail -1 runs/motion-eval/$name/table.md
}
for protocol in ${PROTOCOLS:-video image crossdub}; do run $protocol "${VAL[@]}" --protocol $protocol; done
run expressive $D/expressive --protocol dub --speech $D/audio/english_male_1.wav
run languages $D/train/real/woman_seated_vertical.mp4 --protocol dub "${LANGS[@]/#/--speech=}"
run pause $D/train/real/man_congressman_60s.mp4 $D/train/real/woman_seated_vertical.mp4 \
  $D/train/real/man_bald_beard_couch.mp4 --protocol dub --speech runs/motion-eval/pause_speech.wav
