"""End-to-end time of the web app on the bundled sample: click "Lip-sync" -> result shown.

    python benchmarks/app.py [--runs 3] [--no-eval]

Starts `lipdub app`'s page on a free localhost port, opens it in Debian's headless Chromium
(``/usr/bin/chromium``, driven by Playwright), uploads the bundled sample photo and speech and
times, for each run, the click on "Lip-sync" until the download button appears (the result video,
its summary and, unless ``--no-eval``, the ``lipdub eval`` plots are on the page by then). For
comparison it then times the same work without the page: `lipdub.sync` and
`lipdub.eval.report.evaluate` called directly. The first run includes loading the models.
Compare figures as ratios within one run: the machine's load changes absolute numbers.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def page_times(runs: int, evaluate: bool, work: Path) -> list[float]:
    """Click-to-result seconds of ``runs`` runs in one browser session."""
    from playwright.sync_api import sync_playwright

    from lipdub.serving.app import SAMPLE_FACE, SAMPLE_SPEECH, AppConfig, start

    app = start(AppConfig(work_dir=work / "runs"), "127.0.0.1", _free_port())
    times = []
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch_persistent_context(
                str(work / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1400, "height": 1000})
            page = browser.new_page()
            page.goto(app.local_url)
            page.wait_for_selector("#run", timeout=60_000)
            page.locator("#face-photo input[type=file]").set_input_files(str(SAMPLE_FACE))
            page.locator("#speech input[type=file]").set_input_files(str(SAMPLE_SPEECH))
            page.wait_for_selector("#face-photo img", timeout=30_000)
            if not evaluate:
                page.get_by_text("Options", exact=True).click()
                page.get_by_label("Evaluate the result (lipdub eval: sync scores and plots)").uncheck()
            for run in range(runs):
                previous = page.inner_text("#summary")
                start_time = time.perf_counter()
                page.click("#run")
                page.wait_for_function(
                    "previous => { const s = document.querySelector('#summary'); const d = document.querySelector('#download');"
                    " return d && d.offsetParent !== null && s && s.innerText.startsWith('Done') && s.innerText !== previous; }",
                    arg=previous, timeout=600_000, polling=100)
                times.append(time.perf_counter() - start_time)
                print(f"page run {run + 1}: {times[-1]:.1f} s  ({page.inner_text('#summary')[:60]}...)", flush=True)
            browser.close()
    finally:
        app.close()
    return times


def direct_time(evaluate: bool, work: Path) -> float:
    """Seconds of the same dub (and evaluation) without the page."""
    from lipdub.eval.report import evaluate as run_evaluation
    from lipdub.pipeline import sync
    from lipdub.serving.app import SAMPLE_FACE, SAMPLE_SPEECH

    start_time = time.perf_counter()
    result = sync(SAMPLE_FACE, SAMPLE_SPEECH, work / "direct.mp4")
    if evaluate:
        run_evaluation(result.output, work / "direct-eval")
    return time.perf_counter() - start_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Runs through the page (the first loads the models).")
    parser.add_argument("--no-eval", action="store_true", help="Untick 'Evaluate the result' (dub only).")
    args = parser.parse_args()
    evaluate = not args.no_eval
    with tempfile.TemporaryDirectory(prefix="lipdub-bench-app-") as folder:
        work = Path(folder)
        times = page_times(args.runs, evaluate, work)
        direct = direct_time(evaluate, work)
    what = "dub + eval" if evaluate else "dub only"
    later = times[1:] or times
    print(f"app end to end on the sample ({what}): first {times[0]:.1f} s, then median {statistics.median(later):.1f} s "
          f"over {len(later)} run(s); the same work called directly: {direct:.1f} s")


if __name__ == "__main__":
    main()
