"""PNG/SVG export through kaleido and the local Chromium, offline (in a network namespace with no network)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _need_chromium() -> None:
    if shutil.which("chromium") or os.environ.get("BROWSER_PATH"):
        return
    message = "no Chromium for kaleido (Debian: apt-get install chromium; or set BROWSER_PATH)"
    (pytest.fail if os.environ.get("ANCHORS_REQUIRE_BROWSER") == "1" else pytest.skip)(message)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


EXPORT = """
import sys
from pathlib import Path
import numpy as np
from anchors.viz import importance_bars, sentence_heatmap, write_figures
out = Path(sys.argv[1])
bars = importance_bars(np.array([0.2, 0.9, 0.1]), tags=["plan_generation", None, "self_checking"], title="bars")
heat = sentence_heatmap(np.triu(np.ones((3, 3)), 1), title="heat")
print("\\n".join(str(p) for p in write_figures({out / "bars": bars, out / "sub" / "heat": heat}, ["png", "svg", "html"])))
"""


def _run_export(out: Path, *, offline: bool) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", EXPORT, str(out)]
    if offline:
        command = ["unshare", "--net", "--", *command]  # a new network namespace: only a downed loopback
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_png_and_svg_export_works_offline(tmp_path: Path) -> None:
    """Run in a network namespace with no network when this machine allows one (root), else as is."""
    _need_chromium()
    offline = subprocess.run(["unshare", "--net", "--", "true"], capture_output=True).returncode == 0
    result = _run_export(tmp_path, offline=offline)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _png_size(tmp_path / "bars.png") == (2000, 1300)  # 1000 × 650 layout pixels at scale 2
    assert _png_size(tmp_path / "sub" / "heat.png")[0] == 2000
    svg = ET.parse(tmp_path / "sub" / "heat.svg").getroot()
    assert svg.tag.endswith("svg") and float(svg.get("width")) == 1000
    assert "bars" in (tmp_path / "bars.svg").read_text()  # the title was drawn as text
    html = (tmp_path / "bars.html").read_text()
    assert 'src="plotly.min.js"' in html and (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert 'src="../plotly.min.js"' in (tmp_path / "sub" / "heat.html").read_text()
    if not offline:
        pytest.skip("images written, but with the network up: no network namespace could be made here (needs root)")


def test_no_browser_is_a_clear_error_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import plotly.graph_objects as go

    from anchors.viz.export import ExportError, write_static

    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    with pytest.raises(ExportError, match="needs Chrome or Chromium"):
        write_static({tmp_path / "f.png": go.Figure()})
    assert not (tmp_path / "f.png").exists()
