"""``python -m app demo``: the whole flow on one machine, no AWS account.

Starts the embedded S3 endpoint, creates the buckets and event wiring of a
deployment (S3 notifications to an SQS queue with dead letters, consumed as
Lambda's event source mapping does), uploads sample images (a JPEG 2000
master and a scanned PDF among them) to the source bucket and shows each job
move through the same event handler Lambda runs, then keeps running so more
images can be uploaded with any S3 client.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import boto3
from werkzeug.serving import make_server

from app import records
from app.collection import runner as collection_runner
from app.ids import image_id_for
from app.model import Status
from app.storage.s3 import S3Storage
from app.web import create_app
from config import Settings
from tooling.local_s3 import LocalS3
from tooling.local_stack import DEAD_LETTER_QUEUE_NAME, QUEUE_NAME, LocalStack
from tooling.synth import photo_like

SHARED_TEST_IMAGE = (
    Path(__file__).resolve().parents[2] / "shared" / "iiif-test-image" / "67352ccc-d1b0-11e1-89ae-279075081939.png"
)


def run(port: int = 0, dashboard_port: int = 8000, keep_running: bool = True, say=print) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per dashboard request
    with LocalS3(port) as endpoint, tempfile.TemporaryDirectory(prefix="tiler-demo-") as scratch:
        defaults = Settings()
        os.environ.update(endpoint.environment())  # what Zappa's environment_variables do in a deployment
        os.environ.setdefault("PUBLIC_BASE_URL", f"{endpoint.url}/{defaults.tiles_bucket}")
        os.environ.setdefault("DASHBOARD_PASSWORD", "demo")
        os.environ.setdefault("EVENT_QUEUE", QUEUE_NAME)
        os.environ.setdefault("DEAD_LETTER_QUEUE", DEAD_LETTER_QUEUE_NAME)
        os.environ.setdefault("RETRY_BACKOFF_SECONDS", "5")  # a failed event comes back within seconds here
        settings = Settings.from_env()
        stack = LocalStack(settings, batch_size=2)
        stack.provision()
        stack.start()
        dashboard = make_server("127.0.0.1", dashboard_port, create_app(settings), threaded=True)
        threading.Thread(target=dashboard.serve_forever, name="dashboard", daemon=True).start()
        say(
            f"Local S3 endpoint: {endpoint.url}  (buckets {settings.source_bucket}, {settings.tiles_bucket}, "
            f"{settings.metadata_bucket})"
        )
        say(
            f"Dashboard:         http://127.0.0.1:{dashboard.server_port}/  (password for uploads: "
            f"{settings.dashboard_password})\n"
        )
        keys = _upload_samples(settings, Path(scratch))
        ok = _follow(settings, keys, say, dashboard.server_port)
        ok = _sample_collection(settings, Path(scratch), dashboard.server_port, say) and ok
        say(
            f"\nUpload more:  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws --endpoint-url {endpoint.url} "
            f"s3 cp photo.jpg s3://{settings.source_bucket}/"
        )
        try:
            while keep_running:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        dashboard.shutdown()
        stack.stop()
        return 0 if ok else 1


def _upload_samples(settings: Settings, scratch: Path) -> list[str]:
    s3 = boto3.client("s3")
    samples = []
    if SHARED_TEST_IMAGE.exists():
        samples.append((SHARED_TEST_IMAGE, "iiif/test-image.png"))
    photo = scratch / "harbour.jpg"
    photo_like(6000, 4000).jpegsave(str(photo), Q=90)
    samples.append((photo, "photos/harbour at dawn.jpg"))
    samples.append((_jpeg2000_master(scratch / "map.jp2"), "masters/map.jp2"))
    samples.append((_scanned_pdf(scratch / "letter.pdf", pages=3), "scans/letter.pdf"))
    for path, key in samples:
        s3.upload_file(str(path), settings.source_bucket, key)
    return [key for _, key in samples]


def _jpeg2000_master(path: Path) -> Path:
    """A lossless JPEG 2000 master, as archives keep them."""
    import imagecodecs

    path.write_bytes(imagecodecs.jpeg2k_encode(photo_like(3000, 2000).numpy(), reversible=True))
    return path


def _scanned_pdf(path: Path, pages: int) -> Path:
    """A PDF as scanners write them: each letter page one 150 dpi JPEG; it becomes an item of one image per page."""
    import pypdfium2

    document = pypdfium2.PdfDocument.new()
    for number in range(pages):
        scan = path.with_name(f"scan-{number}.jpg")
        photo_like(1275, 1650).jpegsave(str(scan), Q=85)
        page = document.new_page(612, 792)
        image = pypdfium2.PdfImage.new(document)
        image.load_jpeg(str(scan))
        image.set_matrix(pypdfium2.PdfMatrix().scale(612, 792))
        page.insert_obj(image)
        page.gen_content()
    document.save(str(path))
    return path


def _sample_collection(settings: Settings, scratch: Path, dashboard_port: int, say, timeout: float = 300) -> bool:
    """Two items of three pages each, titled by a CSV, gathered by a task file: a IIIF Collection."""
    s3 = boto3.client("s3")
    for item in ("letters", "ledger"):
        for page in (1, 2, 3):
            path = scratch / f"{item}_{page:03}.jpg"
            photo_like(1800, 2400).jpegsave(str(path), Q=85)
            s3.upload_file(str(path), settings.source_bucket, f"archive/{item}/{item}_{page:03}.jpg")
    s3.put_object(
        Bucket=settings.source_bucket,
        Key="archive/items.csv",
        Body=b"identifier,title,description\nletters,Letters,Correspondence 1970-1975\n"
        b"ledger,Ledger,Accounts of the workshop\n",
    )
    task = {"collection": "archive", "label": "Sample archive", "source_prefix": "archive/", "csv": "archive/items.csv"}
    s3.put_object(Bucket=settings.source_bucket, Key="tasks/archive.json", Body=json.dumps(task).encode())
    store, deadline = S3Storage(settings.upload_workers), time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = store.get_json(settings.metadata_bucket, collection_runner.collection_key("archive"))
        if found and found[0]["status"] in Status.FINAL:
            document = found[0]
            say(
                f"\ncollection archive: {document['status']}, {document['progress']['done']} of "
                f"{document['progress']['total']} images\n  IIIF Collection: {document['urls'].get('collection')}"
                f"\n  Mirador:         http://127.0.0.1:{dashboard_port}/collections/archive"
            )
            return document["status"] == Status.DONE
        time.sleep(0.5)
    say("\ncollection archive did not finish in time")
    return False


def _follow(settings: Settings, keys: list[str], say, dashboard_port: int, timeout: float = 600) -> bool:
    """Print each job's progress until every one is final."""
    store = S3Storage(settings.upload_workers)
    pending, shown, deadline = {image_id_for(k): k for k in keys}, {}, time.monotonic() + timeout
    results = {}
    while pending and time.monotonic() < deadline:
        for image_id in list(pending):
            record = records.read_record(store, settings.metadata_bucket, image_id)
            if not record:
                continue
            progress = record["progress"]
            line = f"  {image_id}: {record['status']} ({progress['phase']} {progress['done']}/{progress['total']})"
            if shown.get(image_id) != line:
                say(line)
                shown[image_id] = line
            if record["status"] in Status.FINAL:
                results[image_id] = record
                del pending[image_id]
        time.sleep(0.3)
    base = settings.public_base_url.rstrip("/")
    for image_id, record in results.items():
        if record["status"] == Status.DONE and record.get("kind") == "item":
            say(
                f"\n{image_id}: {len(record['pages'])} pages ({record['document']['format']}), each an image "
                f"({image_id}/p0001 ...)\n  Manifest:   {base}/{image_id}/manifest.json"
                f"\n  Dashboard:  http://127.0.0.1:{dashboard_port}/images/{image_id}  (pages, Mirador)"
            )
        elif record["status"] == Status.DONE:
            facts = record["facts"]
            say(
                f"\n{image_id}: {facts['width']}x{facts['height']}, {record['objects']} objects in "
                f"{record['timings']['total']}s"
                f"\n  Deep Zoom:  {base}/{image_id}.dzi\n  IIIF:       {base}/{image_id}/info.json"
            )
        else:
            say(f"\n{image_id}: {record['status']}: {record['error']}")
    return not pending and all(r["status"] == Status.DONE for r in results.values())
