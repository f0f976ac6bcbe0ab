"""``--articulation``: the speech's motion scaled, nothing else; bad factors refused in one line."""

from pathlib import Path

import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.pipeline import ARTICULATION_RANGE, check_articulation, sync

ASSETS = Path(__file__).resolve().parents[1] / "lipdub" / "assets"


def test_accepted_factors_are_the_range_only():
    low, high = ARTICULATION_RANGE
    for value in (low, 1.0, 1.3, high):
        check_articulation(value)
    for value in (low - 0.01, high + 0.01, 0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(LipdubError, match="articulation must be between"):
            check_articulation(value)


def test_job_and_live_options_take_the_same_range():
    from pydantic import ValidationError

    from lipdub.serving.live_socket import LiveHello
    from lipdub.serving.options import JobOptions

    assert JobOptions.parse('{"articulation": 1.4}').to_sync_options().articulation == 1.4
    with pytest.raises(LipdubError, match="articulation"):
        JobOptions.parse('{"articulation": 4}')
    assert LiveHello(articulation=0.5).articulation == 0.5
    with pytest.raises(ValidationError):
        LiveHello(articulation=0.1)


def test_articulation_scales_the_speech_motion_of_a_photo(tmp_path):
    """The bundled photo with the bundled speech: the aimed-for openings move 1.5 times as much
    around the photo's own (its rest), frame by frame."""
    face, speech = ASSETS / "sample_face.jpg", ASSETS / "sample_speech.wav"
    plain = sync(face, speech, tmp_path / "plain.mp4", length_mode="cut")
    wide = sync(face, speech, tmp_path / "wide.mp4", length_mode="cut", articulation=1.5)
    a, b = np.asarray(plain.target_aperture), np.asarray(wide.target_aperture)
    assert len(a) == len(b) > 50
    moving = np.abs(a - np.median(a)) > 0.01  # frames whose speech opens or shuts the mouth
    assert moving.sum() > 20
    assert np.std(b) / np.std(a) == pytest.approx(1.5, abs=0.15)
    assert np.corrcoef(a, b)[0, 1] > 0.95  # the same motion, only larger
