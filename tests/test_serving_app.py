"""`lipdub app`: the page's checks without a browser, then the whole page in headless Chromium.

The browser test drives Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``)
through Playwright, never a browser a tool downloads: upload the bundled sample, run, watch the
result play, download it, and record every request the page made (all must go to the app itself:
the page works offline). It skips, with a reason, only when Chromium or Playwright is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import socket
import urllib.request
from pathlib import Path

import pytest

from lipdub.errors import LipdubError
from tests.conftest import headless_chromium
from lipdub.serving.app import (
    PLOTS, SAMPLE_FACE, SAMPLE_SPEECH, AppConfig, StageProgress, build_app, collect_options, dub, parse_box, pick_face, prune_runs, start,
    theme,
)
from lipdub.serving.options import JobOptions
from lipdub.timeline import LengthMode

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "out" / "test-artifacts"


# --- the page's checks, without a browser -----------------------------------------------------

def test_box_is_four_whole_numbers():
    assert parse_box("") is None and parse_box(None) is None
    assert parse_box("10 20 110 140") == (10, 20, 110, 140)
    assert parse_box(" 10, 20,110 ,140 ") == (10, 20, 110, 140)
    for bad in ("10 20 110", "a b c d", "10 20 110 140 5", "-1 0 5 5", "1.5 2 3 4"):
        with pytest.raises(LipdubError, match="box") as caught:
            parse_box(bad)
        assert "\n" not in str(caught.value)


def test_widgets_become_job_options():
    assert collect_options() == JobOptions()
    assert collect_options("", None, "", "", "", "", "", None) == JobOptions()
    options = collect_options("cut", 1, "0 0 50 60", "generator", "", "lipdub-compact", "", 30)
    assert options.length_mode is LengthMode.cut and options.face_index == 1 and options.box == (0, 0, 50, 60)
    assert options.engine == "generator" and options.model == "lipdub-compact" and options.fps == 30.0
    assert collect_options(articulation=1.3).articulation == 1.3 and collect_options().articulation == 1.0
    assert collect_options(face_index="").face_index is None and collect_options(face_index=" 2 ").face_index == 2


def test_an_untouched_face_index_means_the_largest_face(tmp_path):
    """The widget is a text box that starts empty: an untouched gr.Number sent 0, the leftmost face."""
    import gradio as gr

    page = build_app(AppConfig(work_dir=tmp_path))
    widget = next(block for block in page.blocks.values() if getattr(block, "elem_id", None) == "face-index")
    assert isinstance(widget, gr.Textbox) and widget.value == ""
    assert collect_options(face_index=widget.value).face_index is None


@pytest.mark.parametrize("widgets, field", [
    ({"box": "50 50 10 10"}, "box"),
    ({"face_index": 1.5}, "face index"),
    ({"face_index": "two"}, "face index"),
    ({"face_index": -1}, "face_index"),
    ({"engine": "paint"}, "engine"),
    ({"length_mode": "stretch"}, "length_mode"),
    ({"profile": "../etc"}, "profile"),
    ({"fps": 1000}, "fps"),
    ({"articulation": 3.5}, "articulation"),
])
def test_bad_widgets_are_one_line_errors(widgets, field):
    with pytest.raises(LipdubError) as caught:
        collect_options(**widgets)
    message = str(caught.value)
    assert field in message and "\n" not in message


def test_exactly_one_face_input():
    assert pick_face("talk.mp4", None) == Path("talk.mp4")
    assert pick_face(None, "me.jpg") == Path("me.jpg")
    with pytest.raises(LipdubError, match="not both"):
        pick_face("talk.mp4", "me.jpg")
    with pytest.raises(LipdubError, match="give a face"):
        pick_face(None, "")


def test_progress_reports_stage_fraction_and_fps():
    seen: list[tuple[float, str]] = []
    times = iter([10.0, 11.0, 12.0])
    progress = StageProgress(lambda fraction, text: seen.append((fraction, text)), clock=lambda: next(times))
    progress.frames(16, 64)  # the first batch starts the fps clock
    progress.frames(48, 64)  # 32 frames in 1 s
    progress.frames(64, 64)  # 48 frames in 2 s
    assert [text for _, text in seen] == ["rendering: 16/64 frames", "rendering: 48/64 frames, 32.0 fps",
                                          "rendering: 64/64 frames, 24.0 fps"]
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] > 0.1 and fractions[-1] == pytest.approx(0.9)


def _quiet_progress() -> StageProgress:
    return StageProgress(lambda fraction, text: None)


def test_bad_uploads_are_refused_before_any_work(tmp_path):
    config = AppConfig(work_dir=tmp_path / "runs", max_seconds=5.0)
    fake = tmp_path / "talk.mp4"
    fake.write_text("this is not a video\n")
    with pytest.raises(LipdubError) as caught:
        dub(fake, SAMPLE_SPEECH, JobOptions(), config, _quiet_progress())
    assert "talk.mp4" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(LipdubError, match="no audio stream"):
        dub(SAMPLE_FACE, SAMPLE_FACE, JobOptions(), config, _quiet_progress())
    with pytest.raises(LipdubError, match="longer than this server's limit"):  # the sample speech is ~8 s
        dub(SAMPLE_FACE, SAMPLE_SPEECH, JobOptions(), config, _quiet_progress())
    with pytest.raises(LipdubError, match="no profile folder"):
        dub(SAMPLE_FACE, SAMPLE_SPEECH, JobOptions(profile="anna"), AppConfig(work_dir=tmp_path / "runs"), _quiet_progress())
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_failed_run_leaves_no_run_folder(tmp_path):
    config = AppConfig(work_dir=tmp_path / "runs")
    with pytest.raises(LipdubError):  # a box outside the photo: the pipeline refuses it after the checks
        dub(SAMPLE_FACE, SAMPLE_SPEECH, JobOptions(box=(5000, 5000, 6000, 6000)), config, _quiet_progress())
    assert list((tmp_path / "runs").iterdir()) == []


def test_old_runs_are_pruned(tmp_path):
    old, fresh, other = tmp_path / "run-old", tmp_path / "run-fresh", tmp_path / "keep-me"
    for folder in (old, fresh, other):
        folder.mkdir()
        (folder / "lipdub-result.mp4").write_bytes(b"x")
    now = time.time()
    os.utime(old, (now - 7200, now - 7200))
    os.utime(other, (now - 7200, now - 7200))
    assert prune_runs(tmp_path, 3600, now=now) == [old]
    assert not old.exists() and fresh.exists() and other.exists()


def test_photo_upload_reaches_the_checks_as_sent(tmp_path):
    """The photo widget passes the user's own file on (Gradio's Image would re-encode it first)."""
    from gradio.data_classes import ImageData

    import lipdub.serving.app as app_module

    page = build_app(AppConfig(work_dir=tmp_path / "runs"))
    photo = next(block for block in page.blocks.values() if getattr(block, "elem_id", None) == "face-photo")
    fake = tmp_path / "me.jpg"
    fake.write_text("not an image\n")
    assert photo.preprocess(ImageData(path=str(fake))) == str(fake)
    assert photo.preprocess(None) is None
    assert not Path(app_module.__file__).with_suffix(".pyi").exists()  # no stub written beside the module


def test_theme_names_no_web_font():
    from gradio.themes.utils.fonts import GoogleFont

    page_theme = theme()
    fonts = [*page_theme._font, *page_theme._font_mono]
    assert fonts and not any(isinstance(font, GoogleFont) for font in fonts)
    css = page_theme._get_theme_css()
    assert page_theme._stylesheets == []  # where a GoogleFont would put its fonts.googleapis.com link
    assert "system-ui" in css and not re.search(r"@import|url\(\s*['\"]?(https?:)?//", css)


@pytest.mark.slow
def test_dub_writes_video_and_evaluation_into_its_run_folder(tmp_path):
    import av

    config = AppConfig(work_dir=tmp_path / "runs")
    seen: list[tuple[float, str]] = []
    outcome = dub(SAMPLE_FACE, SAMPLE_SPEECH, JobOptions(), config, StageProgress(lambda f, t: seen.append((f, t))))
    assert outcome.video.parent.parent == config.work_dir
    with av.open(str(outcome.video)) as container:
        assert container.streams.video and container.streams.audio
    assert outcome.plots and all(plot.is_file() and plot.name in PLOTS for plot in outcome.plots)
    assert "LSE-D" in outcome.report and "![" not in outcome.report
    texts = [text for _, text in seen]
    assert texts[0] == "checking the uploads" and texts[-1] == "done"
    assert any(re.fullmatch(r"rendering: \d+/\d+ frames, [\d.]+ fps", text) for text in texts)
    assert any(text.startswith("evaluating") for text in texts)
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions)


@pytest.mark.slow
def test_dub_of_a_video_compares_with_the_input(shared, tmp_path):
    """A face video is also `lipdub eval`'s reference: the page gets the mouth and image plots too."""
    face = shared("data/train/real/grid_man_denim.mpg")
    speech = shared("data/train/real/grid_man_denim_1.mpg")  # another sentence of the same speaker
    outcome = dub(face, speech, JobOptions(length_mode="cut"), AppConfig(work_dir=tmp_path / "runs"), _quiet_progress())
    assert {plot.name for plot in outcome.plots} == set(PLOTS)
    assert "from a video" in outcome.summary and "LMD" in outcome.report


# --- the page in a real browser ---------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def served_app(tmp_path):
    config = AppConfig(work_dir=tmp_path / "runs")
    page = start(config, "127.0.0.1", _free_port())
    try:
        yield page.local_url
    finally:
        page.close()


def test_page_is_served_without_web_fonts(served_app):
    with urllib.request.urlopen(served_app, timeout=30) as response:
        text = response.read().decode()
    assert response.status == 200 and "lipdub" in text
    for host in ("fonts.googleapis.com", "fonts.gstatic.com", "cdn.jsdelivr.net", "googletagmanager"):
        assert host not in text


def test_uploads_over_the_size_limit_are_refused(tmp_path):
    import httpx

    page = start(AppConfig(work_dir=tmp_path / "runs", max_upload_mb=1), "127.0.0.1", _free_port())
    try:
        upload = page.local_url.rstrip("/") + "/gradio_api/upload"
        small = httpx.post(upload, files={"files": ("a.wav", b"x" * 1000)}, timeout=30)
        large = httpx.post(upload, files={"files": ("b.wav", b"x" * 2_000_000)}, timeout=30)
    finally:
        page.close()
    assert small.status_code == 200
    assert large.status_code == 413 and "maximum allowed size" in large.text


@pytest.mark.slow
def test_cli_serves_until_terminated_and_removes_its_work_folder(tmp_path):
    import signal
    import subprocess
    import sys

    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the app's work folder and Gradio's cache land here
    server = subprocess.Popen([sys.executable, "-m", "lipdub", "app", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in server.stderr:  # the command prints the address once the page is served
            if "open http://127.0.0.1" in line:
                break
        else:
            pytest.fail(f"lipdub app exited with {server.wait()} before serving")
        assert list(tmp_path.glob("lipdub-app-*"))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            assert response.status == 200
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=120) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert not list(tmp_path.glob("lipdub-app-*"))


#: Collects every progress line the page shows while a run is going (Gradio's progress overlay).
WATCH_PROGRESS = """() => {
    window.__progress = [];
    new MutationObserver(() => {
        const found = document.body.innerText.match(/rendering: \\d+\\/\\d+ frames[^\\n]*/g) || [];
        for (const line of found) if (!window.__progress.includes(line)) window.__progress.push(line);
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""

#: Plays the result (muted, as autoplay rules want) and reports how far it got.
PLAY_RESULT = """async () => {
    const video = document.querySelector('#result video');
    video.muted = true;
    try { await video.play(); } catch (error) { return {error: String(error)}; }
    await new Promise(resolve => setTimeout(resolve, 1500));
    return {time: video.currentTime, readyState: video.readyState, error: video.error && video.error.code};
}"""


@pytest.mark.slow
def test_browser_end_to_end(served_app, tmp_path):
    import av

    with headless_chromium(tmp_path / "chromium-profile", viewport={"width": 1400, "height": 1000},
                           accept_downloads=True) as (browser, requests):
        page = browser.new_page()
        page.goto(served_app)
        page.wait_for_selector("#run", timeout=60_000)

        page.click("#run")  # nothing given yet: the one-line message, as plain text
        toast = page.wait_for_selector(".toast-body", timeout=30_000)
        assert 'give a face' in toast.inner_text() and '"Use the samples"' in toast.inner_text()
        page.locator(".toast-body .toast-close, .toast-close").first.click()

        page.locator("#face-photo input[type=file]").set_input_files(str(SAMPLE_FACE))
        page.locator("#speech input[type=file]").set_input_files(str(SAMPLE_SPEECH))
        page.wait_for_selector("#face-photo img", timeout=30_000)
        page.wait_for_function("() => !document.querySelector('#speech input[type=file]')", timeout=30_000)
        page.evaluate(WATCH_PROGRESS)
        page.click("#run")
        page.wait_for_selector("#download", state="visible", timeout=300_000)
        page.wait_for_selector("#result video", timeout=30_000)

        assert page.evaluate("window.__progress"), "no 'rendering: n/m frames' progress line was shown"
        assert re.search(r"\d+ frames .* from a photo", page.inner_text("#summary"))
        assert "LSE-D" in page.inner_text("#report")
        assert page.locator("#plot-sync_offsets img").count() == 1
        assert not page.locator("#plot-mouth_aperture").is_visible()  # a photo has no input mouth to compare
        played = page.evaluate(PLAY_RESULT)
        assert played.get("error") is None, played
        assert played["time"] > 0 or played["readyState"] >= 2, played

        screenshot = tmp_path / "app.png"
        page.screenshot(path=str(screenshot), full_page=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, ARTIFACTS / "app.png")

        with page.expect_download() as download_info:
            page.click("#download")
        download = tmp_path / "download.mp4"
        download_info.value.save_as(download)
        with av.open(str(download)) as container:
            assert container.streams.video and container.streams.audio
            assert container.duration and container.duration / 1e6 > 1.0

        # a bad option answers with its one-line message, not a traceback
        page.get_by_text("Options", exact=True).click()
        page.fill("#face-box textarea, #face-box input", "50 50 10 10")
        page.click("#run")
        toast = page.wait_for_selector(".toast-body", timeout=30_000)
        message = toast.inner_text()
        assert "box" in message and "Traceback" not in message

        # a face video replaces the photo; the samples button brings the photo (and speech) back
        page.locator("#face-video input[type=file]").set_input_files(str(download))
        page.wait_for_selector("#face-video video", timeout=30_000)
        page.wait_for_function("() => !document.querySelector('#face-photo img')", timeout=30_000)
        page.click("#use-samples")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#face-photo img')].some(img => img.src.includes('sample_face'))",
            timeout=30_000)
        page.wait_for_function("() => !document.querySelector('#face-video video')", timeout=30_000)

    hosts = {re.sub(r":\d+$", "", url.split("/")[2]) for url in requests if "://" in url and not url.startswith("data:")}
    assert requests and hosts <= {"127.0.0.1", "localhost"}, f"the page reached out to {sorted(hosts)}"
