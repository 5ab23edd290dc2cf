"""The README's main job, end to end: python -m app demo converts the samples and a collection."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_runs_the_whole_flow_and_exits_cleanly():
    result = subprocess.run(
        [sys.executable, "-m", "app", "demo", "--exit", "--dashboard-port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert re.search(r"Dashboard: +http://127\.0\.0\.1:\d+/", out)
    assert re.search(r"photos/harbour_at_dawn: 6000x4000, \d+ objects", out)
    assert "collection archive: done, 6 of 6 images" in out
    assert re.search(r"masters/map: 3000x2000, \d+ objects", out)
    assert re.search(
        r"scans/letter: 3 pages \(pdf\), each an image .*\n"
        r"  Manifest: +http://127\.0\.0\.1:\d+/tiler-tiles/scans/letter/manifest\.json",
        out,
    )
    assert re.search(r"IIIF: +http://127\.0\.0\.1:\d+/tiler-tiles/photos/harbour_at_dawn/info\.json", out)
    # The photo goes up in parts: moto's extra ObjectCreated:Put for it must not show as a duplicate delivery.
    assert "will be redelivered" not in out + result.stderr
