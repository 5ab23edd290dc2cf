"""Measurement: a collection run at archive scale, on the S3 stand-in (``--s3-latency-ms``, default 25).

A collection of 10,000 tiny images (1,000 items of 10 pages) and one of
2,500, each in a child process of its own against a fresh stand-in:

- start: the task's invocation (``runner.start``: task, listing, claims,
  record, batch documents), then every batch's invocation at once, as Lambda
  runs them (``runner.run_batch``: each image sent with one COPY); timed to
  the last image sent;
- completion bookkeeping: every image's job record is written ``done`` first
  (untimed: the conversions are the tiling and s3 sections' business), then
  ``runner.image_finished`` runs for all, 32 at a time, as the finishing
  jobs' listeners would; timed to the Collection's publication.

Requests per image are the stand-in's own count (``GET /__stats``). Targets:
start under 60 s for 10,000 images, at most 2 requests per image to start and
5 for the bookkeeping, and linear growth (time per image at 10,000 within
1.5x of that at 2,500). The child runs every invocation in one process, so
boto3's CPU (about 1 ms a request, under one GIL on this machine's cores) is
part of the figures; on Lambda each batch and each listener has a process of
its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from proc import fake_aws_env, run_measured
from results import Column, Context, Section, Target

SECTION = "collections"
IMAGE_KEYS: tuple[str, ...] = ()  # makes its own inputs
SIZES = (2_500, 10_000)
PAGES = 10
LISTENERS = 32  # finishing jobs whose listeners run at once
START_LIMIT_S, START_REQUESTS, BOOKKEEPING_REQUESTS, GROWTH = 60.0, 2.0, 5.0, 1.5
_RESULT = "RESULT "
COLUMNS = [
    Column("images", "images"),
    Column("batches", "batches"),
    Column("task_s", "task s", "{:.2f}"),
    Column("start_s", "start s", "{:.2f}"),
    Column("start_requests", "start req/image", "{:.2f}"),
    Column("bookkeeping_s", "bookkeeping s", "{:.2f}"),
    Column("bookkeeping_requests", "bookkeeping req/image", "{:.2f}"),
    Column("ms_per_image", "start+bookkeeping ms/image", "{:.2f}"),
]


def measure(ctx: Context) -> Section:
    latency_ms = ctx.options.get("s3_latency_ms", 25.0)
    section = Section(SECTION, f"Collections: start and complete, stand-in at {latency_ms:g} ms", list(COLUMNS))
    if str(ctx.repo) not in sys.path:
        sys.path.insert(0, str(ctx.repo))
    from s3_standin import StandInS3

    for images in SIZES:
        with StandInS3(latency_ms / 1000) as standin:
            section.rows.append(_child(ctx, standin.url, images))
    small, large = section.rows
    for row in section.rows:
        row["ms_per_image"] = 1000 * (row["start_s"] + row["bookkeeping_s"]) / row["images"]
    growth = large["ms_per_image"] / small["ms_per_image"]
    section.targets += [
        Target("start (task and every batch) in seconds", "10k", large["start_s"], "<", START_LIMIT_S, " s"),
        Target("S3 requests per image to start", "10k", large["start_requests"], "<=", START_REQUESTS),
        Target(
            "S3 requests per image of completion bookkeeping",
            "10k",
            large["bookkeeping_requests"],
            "<=",
            BOOKKEEPING_REQUESTS,
        ),  # fmt: skip
        Target("time per image at 10,000 over time per image at 2,500 (linear: 1)", "10k", growth, "<=", GROWTH),
    ]
    section.notes += [
        f"{PAGES} pages an item, batches of about 500 images; every batch's invocation runs at once (threads of one "
        "child process), the listeners 32 at a time",
        "bookkeeping: from the first listener to the Collection's publication (item manifests, collection.json, the "
        "record); the conversions themselves are stubbed by the done records they would write",
    ]
    return section


def _child(ctx: Context, endpoint: str, images: int) -> dict[str, Any]:
    env = fake_aws_env(
        AWS_ENDPOINT_URL=endpoint,
        PUBLIC_BASE_URL=f"{endpoint}/tiler-tiles",
        UPLOAD_WORKERS="64",
        BATCH_JOB_QUEUE="",
        BATCH_JOB_DEFINITION="",
    )
    command = [ctx.python, str(Path(__file__).resolve()), "--images", str(images)]
    ctx.log(f"  {images:,} images ...")
    stats = run_measured(command, ctx.work_dir / SECTION / str(images), cwd=ctx.repo, env=env)
    line = next(line for line in reversed(stats.stdout.splitlines()) if line.startswith(_RESULT))
    return json.loads(line[len(_RESULT) :])


# The child: python bench/collection_scale.py --images N ---------------------------------------------------------


def _stats(endpoint: str) -> int:
    from urllib.request import urlopen

    with urlopen(f"{endpoint}/__stats", timeout=30) as answer:  # counts by method, and bytes_out
        return sum(count for name, count in json.loads(answer.read()).items() if name.isupper())


def _run(images: int) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    from app.collection import runner
    from app.ids import image_id_for
    from app.model import SourceRef
    from app.storage.s3 import S3Storage
    from config import Settings
    from tooling.synth import photo_like

    settings, endpoint = Settings.from_env(), os.environ["AWS_ENDPOINT_URL"]
    s3 = boto3.client("s3", config=Config(max_pool_connections=64))
    for bucket in (settings.source_bucket, settings.tiles_bucket, settings.metadata_bucket):
        s3.create_bucket(Bucket=bucket)
    tiny = photo_like(64, 48).write_to_buffer(".jpg")
    keys = [f"bench/{n // PAGES:05}/{n // PAGES:05}_{n % PAGES + 1:03}.jpg" for n in range(images)]
    with ThreadPoolExecutor(64) as pool:
        etags = dict(
            zip(keys, pool.map(lambda k: s3.put_object(Bucket=settings.source_bucket, Key=k, Body=tiny)["ETag"], keys))
        )
    task = json.dumps({"collection": "bench", "source_prefix": "bench/"}).encode()
    etag = s3.put_object(Bucket=settings.source_bucket, Key="tasks/bench.json", Body=task)["ETag"].strip('"')

    before, started = _stats(endpoint), time.perf_counter()
    record = runner.start(SourceRef(settings.source_bucket, "tasks/bench.json", etag, len(task)), settings)
    task_s = time.perf_counter() - started
    batches = [
        SourceRef(settings.source_bucket, key)
        for key in S3Storage(64).list_keys(settings.source_bucket, runner.BATCHES_PREFIX)
    ]
    with ThreadPoolExecutor(len(batches)) as pool:
        list(pool.map(lambda ref: runner.run_batch(ref, settings), batches))
    start_s, start_requests = time.perf_counter() - started, _stats(endpoint) - before

    store = S3Storage(64)
    finished = [
        {
            "id": image_id,
            "status": "done",
            "error": None,
            "source": {"bucket": settings.source_bucket, "key": key, "etag": etags[key].strip('"')},
            "facts": {"width": 64, "height": 48},
        }
        for key, image_id in ((key, image_id_for(key)) for key in keys)
    ]
    with ThreadPoolExecutor(64) as pool:  # what each image's job writes as it ends: not bookkeeping
        list(pool.map(lambda r: store.put_json(settings.metadata_bucket, f"jobs/{r['id']}.json", r), finished))

    before, started = _stats(endpoint), time.perf_counter()
    with ThreadPoolExecutor(LISTENERS) as pool:
        list(pool.map(lambda r: runner.image_finished(r, settings, r["source"]["key"]), finished))
    bookkeeping_s, bookkeeping_requests = time.perf_counter() - started, _stats(endpoint) - before
    document = store.get_json(settings.metadata_bucket, runner.collection_key("bench"))[0]
    if document["status"] != "done" or document["progress"]["done"] != images:
        raise SystemExit(f"the collection did not complete: {document['status']} {document['progress']}")
    collection = json.loads(
        s3.get_object(Bucket=settings.tiles_bucket, Key="collections/bench/collection.json")["Body"].read()
    )
    if len(collection["items"]) != images // PAGES:
        raise SystemExit(f"the Collection lists {len(collection['items'])} items, not {images // PAGES}")
    return {
        "images": images,
        "batches": record["batches"],
        "task_s": round(task_s, 3),
        "start_s": round(start_s, 3),
        "start_requests": round(start_requests / images, 3),
        "bookkeeping_s": round(bookkeeping_s, 3),
        "bookkeeping_requests": round(bookkeeping_requests / images, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bench/collection_scale.py")
    parser.add_argument("--images", type=int, default=10_000)
    arguments = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(_RESULT + json.dumps(_run(arguments.images)), flush=True)
