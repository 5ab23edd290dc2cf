"""Small real images made with libvips, and the conversion as the CLI runs it."""
from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvips

from config import Settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
IIIF_TEST_IMAGE = SHARED / "iiif-test-image" / "67352ccc-d1b0-11e1-89ae-279075081939.png"


def photo(width: int, height: int) -> pyvips.Image:
    """A small photo-like sRGB image: smooth structure plus grain, never flat."""
    bands = [pyvips.Image.perlin(width, height, cell_size=size, uchar=True) for size in (64, 16, 5)]
    return bands[0].bandjoin(bands[1:]).copy(interpretation="srgb")


def solid(width: int, height: int, colour: list[float], interpretation: str = "srgb",
          fmt: str = "uchar") -> pyvips.Image:
    return (pyvips.Image.black(width, height) + colour).cast(fmt).copy(interpretation=interpretation)


def with_orientation(image: pyvips.Image, orientation: int) -> pyvips.Image:
    image = image.copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return image


def exiftool_write(path: Path, *assignments: str) -> None:
    if shutil.which("exiftool") is None:
        pytest.fail("exiftool is not installed: run the README's test command (make test), which installs it")
    subprocess.run(["exiftool", "-q", "-overwrite_original", *assignments, str(path)], check=True)


def convert_local(src: Path, root: Path, settings: Settings, image_id: str = "img"):
    """Convert and publish into ``root/tiles`` and ``root/metadata``, exactly as the CLI does."""
    from app.pipeline import convert
    from app.storage.local import LocalStorage

    storage = LocalStorage(root / "tiles", root / "metadata")
    with storage.staging() as stage:
        conversion = convert(src, stage, settings, image_id)
        storage.publish(conversion)
    return conversion


def tile_pixel(path: Path, x: int, y: int) -> list[float]:
    return pyvips.Image.new_from_file(str(path))(x, y)


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def end_headers(self):  # viewers on other origins read tiles, as from the real bucket
            self.send_header("Access-Control-Allow-Origin", "*")
            super().end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    with in_background(server) as port:
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def in_background(server) -> Iterator[int]:
    """Run an HTTP server (http.server or werkzeug) on a thread for the duration; yields its port."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
