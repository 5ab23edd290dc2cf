"""Small real images made with libvips, and the conversion as the CLI runs it."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pyvips

from config import Settings
from tooling.synth import photo_like

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
IIIF_TEST_IMAGE = SHARED / "iiif-test-image" / "67352ccc-d1b0-11e1-89ae-279075081939.png"


class Clock:
    """Time that moves only when the test moves it: the records' wall clock (``records.now``) and a monotonic one
    for a Journal's heartbeats, so a job ages without the test sleeping."""

    def __init__(self) -> None:
        self.started, self.seconds = datetime.now(UTC), 0.0

    def now(self) -> datetime:
        return self.started + timedelta(seconds=self.seconds)

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


def journals_settled() -> None:
    """Wait for the progress writes journals have sent so far: they land in order, on one background thread."""
    from app import records

    records._background_writes.submit(lambda: None).result()


def photo(width: int, height: int) -> pyvips.Image:
    """A photo-like sRGB image, never flat: the project's one generator, materialised (tests reuse it)."""
    return photo_like(width, height).copy_memory()


def solid(
    width: int, height: int, colour: list[float], interpretation: str = "srgb", fmt: str = "uchar"
) -> pyvips.Image:
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


def jpeg2000(image: pyvips.Image, path: Path, **options) -> Path:
    """Write ``image`` as JPEG 2000 with Pillow's OpenJPEG encoder (the decoder the pipeline uses)."""
    from PIL import Image

    modes = {(1, "uchar"): "L", (2, "uchar"): "LA", (3, "uchar"): "RGB", (4, "uchar"): "RGBA", (1, "ushort"): "I;16"}
    Image.frombytes(modes[image.bands, image.format], (image.width, image.height), image.write_to_memory()).save(
        path, "JPEG2000", **options
    )
    return path


def with_colour_box(jp2: bytes, body: bytes) -> bytes:
    """``jp2`` with the contents of its colr box replaced by ``body`` (method, precedence, approximation, ...)."""
    start = jp2.index(b"jp2h") - 4
    (length,) = struct.unpack(">I", jp2[start : start + 4])
    header, position, boxes = jp2[start + 8 : start + length], 0, b""
    while position < len(header):
        (size,) = struct.unpack(">I", header[position : position + 4])
        kind = header[position + 4 : position + 8]
        boxes += (
            struct.pack(">I4s", 8 + len(body), b"colr") + body
            if kind == b"colr"
            else header[position : position + size]
        )
        position += size
    return jp2[:start] + struct.pack(">I4s", 8 + len(boxes), b"jp2h") + boxes + jp2[start + length :]


def reference_decode(path: Path, target: Path) -> pyvips.Image:
    """OpenJPEG's own command-line decoder (Debian's libopenjp2-tools): the pixels a JPEG 2000 file holds."""
    if shutil.which("opj_decompress") is None:
        pytest.fail("opj_decompress is not installed: run scripts/bootstrap.sh --browser (make test installs it)")
    subprocess.run(["opj_decompress", "-quiet", "-i", str(path), "-o", str(target)], check=True)
    return pyvips.Image.new_from_file(str(target))


def handmade_pdf(catalog: str = "", trailer: str = "", extra_objects: tuple[str, ...] = ()) -> bytes:
    """A one-page PDF written by hand, for what PDFium cannot write: document scripts, encryption."""
    objects = [
        f"<< /Type /Catalog /Pages 2 0 R{catalog} >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 300] >>",
        *extra_objects,
    ]
    out, offsets = b"%PDF-1.7\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    table = f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n" + "".join(f"{o:010} 00000 n \n" for o in offsets)
    return (
        out
        + (
            table + f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{trailer} >>\nstartxref\n{len(out)}\n%%EOF\n"
        ).encode()
    )


SCRIPTED_PDF = {
    "catalog": " /Names << /JavaScript << /Names [(hello) 4 0 R] >> >>",
    "extra_objects": ("<< /S /JavaScript /JS (app.alert\\(1\\);) >>",),
}
ENCRYPTED_PDF = {
    "trailer": f" /Encrypt 4 0 R /ID [<{'ab' * 16}> <{'ab' * 16}>]",
    "extra_objects": (f"<< /Filter /Standard /V 1 /R 2 /O <{'01' * 32}> /U <{'02' * 32}> /P -4 >>",),
}


def sign_in(client) -> str:
    """Sign a dashboard test client in with the password tests/web/conftest.py sets; returns its CSRF token."""
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"password": "open sesame", "csrf": csrf}).status_code == 302
    home = client.get("/").get_data(as_text=True)  # signing in starts a fresh session, with a fresh token
    return re.search(r'csrf: "([^"]+)"', home).group(1)
