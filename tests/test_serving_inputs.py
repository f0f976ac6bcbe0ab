"""The serving layer's shared checks: options parse with one-line errors, uploads are sniffed by content."""

from pathlib import Path

import pytest

from lipdub.errors import LipdubError
from lipdub.serving.inputs import inspect_audio, inspect_face
from lipdub.serving.options import JobOptions
from lipdub.timeline import LengthMode

ASSETS = Path(__file__).resolve().parents[1] / "lipdub" / "assets"


def test_options_default_and_parse():
    assert JobOptions.parse("") == JobOptions()
    options = JobOptions.parse('{"length_mode": "cut", "face_index": 1}')
    sync = options.to_sync_options()
    assert sync.length_mode is LengthMode.cut and sync.face_index == 1 and sync.profile is None
    assert sync.keep_hands is True
    assert JobOptions.parse('{"keep_hands": false}').to_sync_options().keep_hands is False


@pytest.mark.parametrize("text, field", [
    ('{"box": [5, 5, 1, 1]}', "box"),
    ('{"lenght_mode": "cut"}', "lenght_mode"),
    ('{"engine": "paint"}', "engine"),
    ('{"profile": "../../etc"}', "profile"),
    ("not json", "options"),
])
def test_bad_options_are_one_line(text, field):
    with pytest.raises(LipdubError) as caught:
        JobOptions.parse(text)
    message = str(caught.value)
    assert "\n" not in message and field in message


def test_profile_names_never_escape_the_folder(tmp_path):
    (tmp_path / "profiles" / "anna").mkdir(parents=True)
    options = JobOptions(profile="anna")
    assert options.to_sync_options(tmp_path / "profiles").profile == (tmp_path / "profiles" / "anna").resolve()
    with pytest.raises(LipdubError, match="no profile named"):
        JobOptions(profile="bob").to_sync_options(tmp_path / "profiles")
    with pytest.raises(LipdubError, match="no profile folder"):
        options.to_sync_options(None)


def test_sample_uploads_are_recognised():
    assert inspect_face(ASSETS / "sample_face.jpg").kind == "photo"
    speech = inspect_audio(ASSETS / "sample_speech.wav")
    assert speech.kind == "audio" and 7.5 < speech.duration < 8.5
    with pytest.raises(LipdubError, match="longer than"):
        inspect_audio(ASSETS / "sample_speech.wav", max_seconds=2)


def test_text_renamed_mp4_is_refused(tmp_path):
    fake = tmp_path / "talk.mp4"
    fake.write_text("this is not a video\n" * 50)
    for inspect in (inspect_face, inspect_audio):
        with pytest.raises(LipdubError):
            inspect(fake)


def test_truncated_audio_is_refused(tmp_path):
    source = ASSETS / "sample_speech.wav"
    cut = tmp_path / "cut.wav"
    cut.write_bytes(source.read_bytes()[:40])  # the header only
    with pytest.raises(LipdubError):
        inspect_audio(cut)
