#!/usr/bin/env bash
# The seven contact sheets of docs/model-card.md ("Contact sheets"), made again with the current
# engine and default model: four validation clips with new speech, two validation clips' first
# frames as photos with their own speech, and the bundled demo. Writes docs/images/motion-*.jpg.
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
R=$D/train/real
sheet() { python experiments/contact_sheet.py "$@" --start 0; }
sheet $R/woman_flag.mp4 $D/audio/German1.wav -o docs/images/motion-woman_flag.jpg
sheet $R/woman_seated_vertical.mp4 $D/audio/english_female_1.wav -o docs/images/motion-woman_seated_vertical.jpg
sheet $R/man_restaurant_noisy.mp4 $D/audio/french1.wav -o docs/images/motion-man_restaurant_noisy.jpg
sheet $R/grid_man_denim.mpg $D/audio/english_male_1.wav -o docs/images/motion-grid_man_denim.jpg
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for clip in grid_man_denim_1.mpg woman_politician_uk.mp4; do
  photo=$(python -c "from pathlib import Path; from lipdub.eval.protocols import first_frame_photo; print(first_frame_photo(Path('$R/$clip'), Path('$work/${clip%.*}.png')))")
  sheet "$photo" $R/$clip -o docs/images/motion-photo-${clip%.*}.jpg
done
sheet lipdub/assets/sample_face.jpg lipdub/assets/sample_speech.wav -o docs/images/motion-demo.jpg
