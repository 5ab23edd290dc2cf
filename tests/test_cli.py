"""python -m app convert: exit codes, one-line errors, nothing left behind, progress shown."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.helpers import photo

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "app", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def _all_files(*folders):
    return sorted(str(p) for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file())


def test_converts_many_files_and_reports_each_failure_in_one_line(tmp_path):
    good = tmp_path / "good photo.jpg"
    photo(700, 500).jpegsave(str(good))
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    tiles, meta = tmp_path / "tiles", tmp_path / "meta"

    result = run_cli(
        "convert", good, bad, "--tiles-dir", tiles, "--metadata-dir", meta, "--base-url", "https://x.org/iiif"
    )

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {bad}: rejected: not an image format libvips recognises"]
    assert "[1/2] good photo.jpg" in result.stderr and "[2/2] notes.jpg" in result.stderr  # plain lines in logs
    assert "1 of 2 converted" in result.stdout
    assert json.loads((tiles / "good_photo" / "info.json").read_text())["id"] == "https://x.org/iiif/good_photo"
    assert (meta / "good_photo.json").exists()
    assert not [f for f in _all_files(tiles, meta) if "notes" in f or ".staging" in f]


def test_a_rejected_image_leaves_the_output_folders_empty(tmp_path):
    big = tmp_path / "big.png"
    photo(400, 300).pngsave(str(big))
    tiles, meta = tmp_path / "tiles", tmp_path / "meta"

    result = run_cli("convert", big, "--tiles-dir", tiles, "--metadata-dir", meta, env={"MAX_PIXELS": "100000"})

    assert result.returncode == 1
    assert f"error: {big}: rejected: 400x300 is 120,000 pixels, over the limit of 100,000 (MAX_PIXELS)" in result.stderr
    assert _all_files(tiles, meta) == []


def test_explicit_id_and_usage_errors(tmp_path):
    src = tmp_path / "a.png"
    photo(50, 40).pngsave(str(src))
    tiles, meta = tmp_path / "tiles", tmp_path / "meta"

    ok = run_cli("convert", src, "--tiles-dir", tiles, "--metadata-dir", meta, "--id", "collection/item-1")
    assert ok.returncode == 0, ok.stderr
    assert (tiles / "collection" / "item-1.dzi").exists() and (meta / "collection" / "item-1.json").exists()

    two = run_cli("convert", src, src, "--tiles-dir", tiles, "--metadata-dir", meta, "--id", "x")
    assert two.returncode == 2 and "--id names one image" in two.stderr
    traversal = run_cli("convert", src, "--tiles-dir", tiles, "--metadata-dir", meta, "--id", "../escape")
    assert traversal.returncode == 2 and "--id '../escape'" in traversal.stderr
    bad_setting = run_cli("convert", src, "--tiles-dir", tiles, "--metadata-dir", meta, env={"TILE_SIZE": "huge"})
    assert bad_setting.returncode == 2 and "TILE_SIZE='huge' is not a valid value" in bad_setting.stderr


def test_settings_command_documents_every_variable():
    result = run_cli("settings", env={"JPEG_QUALITY": "77"})
    assert result.returncode == 0
    assert "JPEG_QUALITY=77" in result.stdout and "PUBLIC_BASE_URL=" in result.stdout


def test_a_terminal_gets_live_progress_bars(tmp_path):
    """Files done of N and the current file's percentage, drawn on a real pseudo-terminal."""
    sources = []
    for name in ("one.jpg", "two.jpg"):
        sources.append(tmp_path / name)
        photo(900, 700).jpegsave(str(sources[-1]))
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "convert",
            *map(str, sources),
            "--tiles-dir",
            str(tmp_path / "t"),
            "--metadata-dir",
            str(tmp_path / "m"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        screen += chunk
    assert process.wait(timeout=60) == 0
    text = screen.decode(errors="replace")
    assert "images:" in text and "2/2" in text
    assert "one.jpg:" in text and "100%" in text
