"""How the HTML report scales with trace length: file size, time to write it, and in headless Chromium the time
until the page answers, until every plot is drawn, and for selecting a sentence to show its details (until
the next frame).

Browser times are compared with a page holding only the inlined plotly.js (the floor every report pays).
Medians of --repeats runs, one process, the same machine: read the ratios, not the absolute seconds.

    python benchmarks/report_scale.py [--sizes 30,100,300] [--rollouts 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from plotly.offline import get_plotlyjs

from anchors.report.html import write_trace_report
from anchors.results import write_results
from anchors.report.synthetic import synthetic_results

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


_SELECT_UNTIL_FRAME = """() => new Promise(done => { const t0 = performance.now(); window.anchorsReport.select(%d, false);
    requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0)); })"""


def _median_time(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _browser_times(browser, path: Path, repeats: int, n: int) -> tuple[float, float, float]:
    ready, drawn, click = [], [], []
    for _ in range(repeats):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_function("document.body.dataset.ready === '1'")
        ready.append(time.perf_counter() - start)
        if n:
            start = time.perf_counter()
            page.evaluate("window.anchorsReport.drawAll()")
            drawn.append(time.perf_counter() - start)
            # In-page: select a sentence (list highlight + details panel) until the next frame is drawn, so the
            # browser automation's own overhead is not counted.
            frames = [page.evaluate(_SELECT_UNTIL_FRAME % i) for i in range(n // 2, n // 2 + 5) if i < n]
            click.append(statistics.median(frames) / 1000)
        page.close()
    return statistics.median(ready), statistics.median(drawn) if drawn else 0.0, statistics.median(click) if click else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,100,300")
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp())
    floor = work / "plotly_only.html"
    floor.write_text(f"<!DOCTYPE html><html><head><script>{get_plotlyjs()}</script></head>"
                     "<body><script>document.body.dataset.ready='1'</script></body></html>")
    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        base_ready, _, _ = _browser_times(browser, floor, args.repeats, 0)
        for n in (int(s) for s in args.sizes.split(",")):
            folder = write_results(synthetic_results(n, n_rollouts=args.rollouts, n_layers=48, n_heads=40, trace_id=f"n{n}"), work)
            write_s = _median_time(lambda: write_trace_report(folder), args.repeats)
            path = folder / "report.html"
            ready, drawn, click = _browser_times(browser, path, args.repeats, n)
            rows.append((n, path.stat().st_size / 2**20, write_s, ready, ready / base_ready, drawn, click * 1000))
        browser.close()
    print(f"report scale: {args.rollouts} rollouts per sentence, 48 x 40 heads, medians of {args.repeats}; "
          f"plotly.js-only page opens in {base_ready:.2f} s")
    print(f"{'sentences':>9} {'MiB':>6} {'write s':>8} {'open s':>7} {'open/plotly-only':>17} {'draw all s':>11} {'select ms':>9}")
    for n, mib, write_s, ready, ratio, drawn, click in rows:
        print(f"{n:>9} {mib:>6.1f} {write_s:>8.2f} {ready:>7.2f} {ratio:>17.2f} {drawn:>11.2f} {click:>9.0f}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
