"""Measurement: random 512 px tile requests, dynamic IIIF endpoint against the static tiles (issue 6).

For the 430 MP image: requests/s, median and p99 latency of the same random
sequence of tile requests (``--iiif-requests``, default 300, drawn with a fixed
seed from every tile at every scale factor), sent by ``--iiif-clients``
threads (default 4) with keep-alive sessions:

- dynamic: ``/iiif/3/bench430/{region}/{size}/0/default.jpg`` on the app
  (``app.web.create_app`` on werkzeug's threaded server, in a child process of
  its own), answered with the tile each request is exactly, as published
  (``publish_for_endpoint``: the sampled tiles under both names and the job
  record); a fresh process per
  run, so the first pass is cold (empty tile cache, first boto3 client) and the
  second pass, over the same sequence, is warm;
- static: the same tiles as objects in the tiles bucket, GET straight from the
  S3 endpoint, as a viewer reads them.

S3 is the moto server (``tooling.local_s3.LocalS3``), in a process of its own. The
bytes the endpoint reads from S3 per request come from
``app.storage.tile_pyramid``'s own counters (``ReadStats``, one per
``TilePyramid``): the server child (``python bench/iiif_load.py serve``)
collects the TilePyramids each request makes and answers with their sum in
``X-Bench-*`` headers, and ``/__bytes`` gives the process totals; nothing in
``app/`` is changed.

Setup is cached in ``bench/data/iiif-430mp/``: the static tiles
(``python -m app convert --id bench430`` with ``SERVING_TIFF=false``). Only
the sampled static tiles (and their Deep Zoom names, which the endpoint reads)
are uploaded to moto (all of them would take minutes). The ``tiff`` child
writes a serving TIFF for the iiif-peer section's peer.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from proc import RunFailed, fake_aws_env, run_measured
from results import Column, Context, Section

SECTION = "iiif"  # what run.py's --only selects
IMAGE_KEYS = ("430mp",)
IMAGE_ID = "bench430"
TILE_SIZE = 512
QUALITY = 85
SEED = 6  # issue 6
DEFAULT_REQUESTS = 300
DEFAULT_CLIENTS = 4
REQUEST_TIMEOUT = 120
TILES_BUCKET, METADATA_BUCKET, SOURCE_BUCKET = "tiler-tiles", "tiler-metadata", "tiler-source"
_READY = "READY "  # children print their address on a line starting with this

COLUMNS = [
    Column("side", "side"),
    Column("pass", "pass"),
    Column("requests", "requests"),
    Column("clients", "clients"),
    Column("rps", "req/s", "{:.1f}"),
    Column("median_ms", "median ms", "{:.1f}"),
    Column("p99_ms", "p99 ms", "{:.1f}"),
    Column("errors", "errors"),
    Column("response_kb", "response KB", "{:.1f}"),
    Column("s3_kb_mean", "S3 KB/req mean", "{:.1f}"),
    Column("s3_kb_median", "S3 KB/req median", "{:.1f}"),
    Column("s3_requests", "S3 req/req", "{:.2f}"),
    Column("wall_s", "wall s", "{:.1f}"),
]


# The measurement (runs in the benchmark process) --------------------------------------------------
def measure(ctx: Context) -> Section:
    image = next(i for i in ctx.images if i.key in IMAGE_KEYS)
    count = int(ctx.options.get("iiif_requests") or DEFAULT_REQUESTS)
    clients = int(ctx.options.get("iiif_clients") or DEFAULT_CLIENTS)
    section = Section(
        SECTION,
        f"IIIF: random {TILE_SIZE}px tiles of the {image.megapixels:.0f} MP image, dynamic "
        "endpoint vs static tiles (local S3: moto)",
        list(COLUMNS),
    )
    if str(ctx.repo) not in sys.path:
        sys.path.insert(0, str(ctx.repo))
    from tooling.deploy.documents import TILES_CORS
    from tooling.local_stack import public_read

    cache = ctx.repo / "bench" / "data" / f"iiif-{image.key}"
    tiles_dir = _prepare(ctx, image, cache)
    sequence = sample_paths(image.width, image.height, count)
    keys = sorted(set(sequence))
    missing = [key for key in keys if not (tiles_dir / key).is_file()]
    if missing:
        raise RunFailed(f"{len(missing)} sampled static tiles missing under {tiles_dir}, e.g. {missing[0]}")
    work = ctx.work_dir / "iiif"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with _Child(ctx, ["s3"], work / "logs-s3", _env(None)) as moto:
        endpoint = moto.address
        s3 = _boto_client(endpoint)
        for bucket in (SOURCE_BUCKET, TILES_BUCKET, METADATA_BUCKET):
            s3.create_bucket(Bucket=bucket)
        # as deployed (and as tooling.local_stack provisions it): anyone may read the tiles bucket's objects
        s3.put_bucket_policy(Bucket=TILES_BUCKET, Policy=json.dumps(public_read(TILES_BUCKET)))
        s3.put_bucket_cors(Bucket=TILES_BUCKET, CORSConfiguration=TILES_CORS)
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda key: s3.put_object(
                        Bucket=TILES_BUCKET, Key=key, Body=(tiles_dir / key).read_bytes(), ContentType="image/jpeg"
                    ),
                    keys,
                )
            )
        tiles_upload_s = time.perf_counter() - started
        from app.iiif import grid

        twins = {
            grid.image_path(IMAGE_ID, image.width, image.height, t.region, t.size): t.dz_path(IMAGE_ID)
            for t in grid.tiles(image.width, image.height, TILE_SIZE)
        }  # the dynamic side answers each sampled tile with its Deep Zoom twin (the same bytes)
        dz_keys = sorted({twins[k] for k in keys})
        publish_for_endpoint(s3, tiles_dir, IMAGE_ID, image.width, image.height, dz_keys, static=(3,))
        ctx.log(f"  uploaded {len(keys)} static tiles in {tiles_upload_s:.1f} s, and their Deep Zoom names")
        probe = _probe_moto(endpoint, keys[0])
        ctx.log(f"  moto alone: GET of a static tile {probe['tile_ms']:.1f} ms (median of {probe['n']})")

        passes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        static_urls = [f"{endpoint}/{TILES_BUCKET}/{key}" for key in sequence]
        for index in range(ctx.runs):
            run_work = work / f"run-{index + 1}"
            with _Child(ctx, ["serve"], run_work / "logs-serve", _env(endpoint)) as server:
                dynamic_urls = [f"{server.address}/iiif/3/{key}" for key in sequence]
                # static first while the server is idle; then the server's cold pass and its warm pass
                for side, name, urls in (
                    ("static", "-", static_urls),
                    ("dynamic", "cold", dynamic_urls),
                    ("dynamic", "warm", dynamic_urls),
                ):
                    before = _server_totals(server.address) if side == "dynamic" else None
                    result = run_pass(urls, clients)
                    if before is not None:
                        result["totals"] = _delta(_server_totals(server.address), before)
                    result.update(side=side, pass_=name, run=index + 1)
                    passes.setdefault((side, name), []).append(result)
                    ctx.log(f"  run {index + 1} {side:<7} {name:<4}: {_describe(result)}")
    rows = [_row(side, name, runs, clients) for (side, name), runs in passes.items()]
    section.rows += rows
    section.runs += [_run_record(image.key, result) for results in passes.values() for result in results]
    section.notes += _notes(image, sequence, keys, tiles_upload_s, probe, rows)
    if not ctx.keep:
        shutil.rmtree(work, ignore_errors=True)
    return section


def publish_for_endpoint(
    s3: Any, tiles_dir: Path, image_id: str, width: int, height: int, keys: list[str], static: tuple[int, ...] = ()
) -> None:
    """What the dynamic endpoint answers from: the objects ``keys`` (as staged by ``python -m app convert``) and a
    final job record naming the published version and ``static``, the Image API versions whose level-0 names
    ``keys`` hold, as a conversion's record does."""
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda key: s3.put_object(
                    Bucket=TILES_BUCKET, Key=key, Body=(tiles_dir / key).read_bytes(), ContentType="image/jpeg"
                ),
                keys,
            )
        )
    record = {
        "id": image_id,
        "status": "done",
        "published": {"etag": "b" * 32, "key": f"{image_id}.jpg", "width": width, "height": height},
        "tile_size": TILE_SIZE,
        "iiif_versions": list(static),
    }
    s3.put_object(Bucket=METADATA_BUCKET, Key=f"jobs/{image_id}.json", Body=json.dumps(record).encode())


def sample_paths(width: int, height: int, count: int) -> list[str]:
    """``count`` canonical IIIF tile paths (``ID/region/size/0/default.jpg``), a fixed-seed random draw from every
    tile at every scale factor: distinct tiles when there are enough, else with repeats."""
    from app.iiif import grid

    every = [
        grid.image_path(IMAGE_ID, width, height, tile.region, tile.size)
        for tile in grid.tiles(width, height, TILE_SIZE)
    ]
    rng = random.Random(SEED)
    return rng.sample(every, count) if count <= len(every) else rng.choices(every, k=count)


def run_pass(urls: list[str], clients: int) -> dict[str, Any]:
    """GET every URL once, ``clients`` at a time (in order, each to the next free client); per-request results."""
    import requests

    local = threading.local()
    results: list[dict[str, Any] | None] = [None] * len(urls)

    def fetch(index: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        started = time.perf_counter()
        try:
            answer = session.get(urls[index], timeout=REQUEST_TIMEOUT)
            body = answer.content
            results[index] = {
                "ms": (time.perf_counter() - started) * 1000,
                "status": answer.status_code,
                "bytes": len(body),
                "s3_bytes": _int(answer.headers.get("X-Bench-S3-Bytes")),
                "s3_requests": _int(answer.headers.get("X-Bench-S3-Requests")),
            }
        except requests.RequestException as error:
            results[index] = {"ms": (time.perf_counter() - started) * 1000, "status": None, "error": repr(error)}

    started = time.perf_counter()
    with ThreadPoolExecutor(clients, thread_name_prefix="client") as pool:
        list(pool.map(fetch, range(len(urls))))
    wall = time.perf_counter() - started
    done = [r for r in results if r is not None]
    ok = [r for r in done if r["status"] == 200]
    failures = Counter(str(r.get("status") or r.get("error")) for r in done if r["status"] != 200)
    return {
        "requests": len(urls),
        "wall_s": wall,
        "ok": ok,
        "errors": len(urls) - len(ok),
        "error_kinds": dict(failures),
    }


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (p99 of 300 values is the third largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _describe(result: dict[str, Any]) -> str:
    latencies = [r["ms"] for r in result["ok"]] or [math.nan]
    text = (
        f"{result['requests'] / result['wall_s']:6.1f} req/s, median {statistics.median(latencies):6.1f} ms, "
        f"p99 {percentile(latencies, 0.99):7.1f} ms, {result['errors']} errors"
    )
    if result["error_kinds"]:
        text += f" {result['error_kinds']}"
    if "totals" in result:
        totals = result["totals"]
        text += (
            f"; S3 {totals['bytes_fetched'] / result['requests'] / 1024:.0f} KB/request, "
            f"{totals['gets']} tile GETs, {totals['cache_hits']} tile-cache hits"
        )
    return text


def _row(side: str, name: str, runs: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """Medians over runs of each run's figures."""

    def over_runs(figure) -> float | None:
        values = [v for v in (figure(run) for run in runs) if v is not None]
        return statistics.median(values) if values else None

    dynamic = side == "dynamic"
    return {
        "side": side,
        "pass": name,
        "requests": runs[0]["requests"],
        "clients": clients,
        "rps": over_runs(lambda r: r["requests"] / r["wall_s"]),
        "median_ms": over_runs(lambda r: statistics.median(x["ms"] for x in r["ok"]) if r["ok"] else None),
        "p99_ms": over_runs(lambda r: percentile([x["ms"] for x in r["ok"]], 0.99) if r["ok"] else None),
        "errors": sum(r["errors"] for r in runs),
        "response_kb": over_runs(lambda r: statistics.mean(x["bytes"] for x in r["ok"]) / 1024 if r["ok"] else None),
        "s3_kb_mean": over_runs(lambda r: r["totals"]["bytes_fetched"] / r["requests"] / 1024) if dynamic else None,
        "s3_kb_median": over_runs(lambda r: statistics.median(_s3_bytes(r)) / 1024 if _s3_bytes(r) else None)
        if dynamic
        else None,
        "s3_requests": over_runs(
            lambda r: (r["totals"]["gets"] + r["totals"]["heads"] + r["totals"]["other"]) / r["requests"]
        )
        if dynamic
        else 1.0,
        "wall_s": over_runs(lambda r: r["wall_s"]),
    }


def _s3_bytes(result: dict[str, Any]) -> list[int]:
    return [x["s3_bytes"] for x in result["ok"] if x["s3_bytes"] is not None]


def _run_record(image_key: str, result: dict[str, Any]) -> dict[str, Any]:
    """One pass for the JSON record (run.py prints ``seconds`` per run)."""
    latencies = [x["ms"] for x in result["ok"]]
    return {
        "image": image_key,
        "side": f"{result['side']} {result['pass_']}".strip(" -"),
        "run": result["run"],
        "seconds": round(result["wall_s"], 3),
        "requests": result["requests"],
        "errors": result["errors"],
        "error_kinds": result["error_kinds"],
        "latencies_ms": [round(v, 2) for v in latencies],
        "s3_bytes": _s3_bytes(result),
        "totals": result.get("totals"),
    }


def _notes(
    image: Any,
    sequence: list[str],
    keys: list[str],
    tiles_upload_s: float,
    probe: dict[str, float],
    rows: list[dict[str, Any]],
) -> list[str]:
    from app.iiif import grid

    every = list(grid.tiles(image.width, image.height, TILE_SIZE))
    scale_of = {
        grid.image_path(IMAGE_ID, image.width, image.height, t.region, t.size): 2 ** (every[0].dz_level - t.dz_level)
        for t in every
    }
    mix = Counter(scale_of[path] for path in sequence)
    return [
        f"the same {len(sequence)} requests on every pass ({len(keys)} distinct tiles of the {len(every)} at scale "
        f"factors {', '.join(f'{s}:{n}' for s, n in sorted(mix.items()))} (factor:count), seed {SEED}); "
        "any non-200 answer counts as an error",
        "dynamic: each request exactly a tile, answered with the tile as published (the sampled tiles under their "
        "IIIF and Deep Zoom names and the job record: bench/iiif_load.py publish_for_endpoint)",
        "S3 KB/req: bytes of the tiles the endpoint fetched (tile_pyramid ReadStats.bytes_fetched; tile cache "
        "IIIF_BLOCK_CACHE_MB=64): the mean from the process's totals; the median from each answer's own count, "
        "which misses the tiles fetched while its record was read (counted by the pyramid of an earlier "
        "request), so it reads 0 once the image is known; S3 req/req: every S3 request it made (the job record's "
        "GET and the tiles' GETs). "
        "Static: one GET of the tile object, its size in 'response KB'",
        "cold = first pass on a fresh server process (its first request also pays the first boto3 client; every "
        "request's tile is fetched while its record is read: by its IIIF name until the image is known, then by its "
        "Deep Zoom name); warm = the same sequence again (the record's GET only)",
        f"uploaded to moto: only the {len(keys)} sampled static tiles, in {tiles_upload_s:.1f} s (all {len(every)} "
        f"IIIF tiles would take ~{tiles_upload_s / len(keys) * len(every):.0f} s), and their Deep Zoom names",
        "moto applies requests one at a time (LocalS3's lock), which caps both sides; a GET of one static tile "
        f"took {probe['tile_ms']:.1f} ms (median of {probe['n']}, moto alone)",
        "response KB: both sides answer with the tile as convert wrote it (a request for exactly a tile is not "
        "rendered)",
        f"{os.cpu_count()} cores shared by the client threads, the app server and moto (three processes)",
    ]


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before.get(key, 0) for key in after}


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None


def _server_totals(address: str) -> dict[str, int]:
    import requests

    answer = requests.get(f"{address}/__bytes", timeout=30)
    answer.raise_for_status()
    return answer.json()


def _probe_moto(endpoint: str, tile_key: str, n: int = 15) -> dict[str, float]:
    """Latency of moto alone: a GET of one static tile."""
    import requests

    session = requests.Session()

    def timed(url: str, headers: dict[str, str]) -> float:
        started = time.perf_counter()
        answer = session.get(url, headers=headers, timeout=REQUEST_TIMEOUT)
        answer.raise_for_status()
        return (time.perf_counter() - started) * 1000

    # unsigned GETs, as a viewer's: the tiles bucket's public-read policy lets them through
    tile = [timed(f"{endpoint}/{TILES_BUCKET}/{tile_key}", {}) for _ in range(n)]
    return {"tile_ms": statistics.median(tile), "n": n}


def _boto_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    from tooling.local_s3 import FAKE_CREDENTIALS

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(max_pool_connections=16),
    )


def _env(endpoint: str | None) -> dict[str, str]:
    """A child's environment: the endpoint, fake credentials, pinned settings, no developer AWS config."""
    env = fake_aws_env(
        TILE_SIZE=str(TILE_SIZE),
        JPEG_QUALITY=str(QUALITY),
        TILES_BUCKET=TILES_BUCKET,
        METADATA_BUCKET=METADATA_BUCKET,
        SOURCE_BUCKET=SOURCE_BUCKET,
        BATCH_JOB_QUEUE="",
        BATCH_JOB_DEFINITION="",
        DERIVATIVES_FILE="",
    )
    if endpoint:
        env.update(AWS_ENDPOINT_URL=endpoint, PUBLIC_BASE_URL=f"{endpoint}/{TILES_BUCKET}")
    return env


class _Child:
    """A server child (``python bench/iiif_load.py s3|serve``): prints its address, runs until its stdin closes."""

    def __init__(self, ctx: Context, args: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.ctx, self.args, self.log_dir, self.env = ctx, args, log_dir, env
        self.address = ""

    def __enter__(self) -> _Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = (self.log_dir / "stderr.log").open("wb")
        self.proc = subprocess.Popen(
            [self.ctx.python, str(Path(__file__).resolve()), *self.args],
            cwd=self.ctx.repo,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        line = self.proc.stdout.readline().decode()  # EOF (a crash) gives "", handled below
        if not line.startswith(_READY):
            self._stop()
            raise RunFailed(f"{' '.join(self.args)} child did not start; see {self.log_dir / 'stderr.log'}")
        self.address = line[len(_READY) :].strip()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        try:
            self.proc.stdin.close()  # the child's signal to shut down
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        finally:
            self.proc.stdout.close()
            self._stderr.close()


# Setup (cached) ------------------------------------------------------------------------------------
def _prepare(ctx: Context, image: Any, cache: Path) -> Path:
    """The static tiles of ``image`` (``python -m app convert``), made once per source JPEG (size and mtime)."""
    stamp_path, tiles_dir = cache / "stamp.json", cache / "tiles"
    stat = image.path.stat()
    stamp = {
        "source": str(image.path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "tile_size": TILE_SIZE,
        "quality": QUALITY,
    }
    try:
        cached = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        cached = {}
    if cached.get("stamp") == stamp and (tiles_dir / IMAGE_ID).is_dir():
        ctx.log(f"  using the cached static tiles in {cache}")
        return tiles_dir
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    ctx.log("  making the static tiles (python -m app convert, SERVING_TIFF=false) ...")
    env = {**_env(None), "SERVING_TIFF": "false", "WORK_DIR": str(cache / "work")}
    (cache / "work").mkdir()
    made_tiles = run_measured(
        [
            ctx.python,
            "-m",
            "app",
            "convert",
            str(image.path),
            "--tiles-dir",
            str(tiles_dir),
            "--metadata-dir",
            str(cache / "metadata"),
            "--id",
            IMAGE_ID,
        ],
        log_dir=cache / "logs" / "convert",
        cwd=ctx.repo,
        env=env,
    )
    shutil.rmtree(cache / "work", ignore_errors=True)
    ctx.log(f"  done in {made_tiles.seconds:.1f} s, peak RSS {made_tiles.peak_rss_mb:.0f} MB")
    stamp_path.write_text(json.dumps({"stamp": stamp, "convert_s": round(made_tiles.seconds, 1)}) + "\n")
    return tiles_dir


# The children (python bench/iiif_load.py tiff|s3|serve) ----------------------------------------------
def _child_tiff(source: Path, target: Path) -> None:
    import pyvips

    from app.pipeline.tiles import write_serving_tiff

    write_serving_tiff(pyvips.Image.new_from_file(str(source), access="sequential"), target, QUALITY)


def _child_s3() -> None:
    from tooling.local_s3 import LocalS3

    with LocalS3() as s3:
        print(_READY + s3.url, flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin


def _child_serve() -> None:
    """The app on werkzeug's threaded server, plus what the benchmark reads: S3 reads per request and in total."""
    from flask import g, has_request_context, jsonify
    from werkzeug.serving import WSGIRequestHandler, make_server

    from app.storage import s3 as storage
    from app.storage import tile_pyramid
    from app.web import create_app
    from config import Settings

    lock = threading.Lock()
    opened: list[tile_pyramid.TilePyramid] = []  # every TilePyramid this process made: their ReadStats count
    requests_by_method: Counter[str] = Counter()
    original_init = tile_pyramid.TilePyramid.__init__

    def init(self: tile_pyramid.TilePyramid, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        with lock:
            opened.append(self)
        if has_request_context():
            g.setdefault("bench_tiffs", []).append(self)

    tile_pyramid.TilePyramid.__init__ = init  # the class the endpoint uses; this process only

    def count_request(request: Any, **_kwargs: Any) -> None:
        with lock:
            requests_by_method[request.method] += 1
        if has_request_context():
            g.bench_s3_requests = g.get("bench_s3_requests", 0) + 1

    settings = Settings.from_env()
    storage.client(settings.upload_workers).meta.events.register("before-send.s3.*", count_request)
    app = create_app(settings)

    @app.after_request
    def reads(response):
        tiffs = g.get("bench_tiffs", [])
        response.headers["X-Bench-S3-Bytes"] = str(sum(t.stats.bytes_fetched for t in tiffs))
        response.headers["X-Bench-S3-Requests"] = str(g.get("bench_s3_requests", 0))
        return response

    @app.get("/__bytes")
    def totals():
        with lock:
            stats = [t.stats for t in opened]
            methods = dict(requests_by_method)
        return jsonify(
            bytes_fetched=sum(s.bytes_fetched for s in stats),
            gets=sum(s.gets for s in stats),
            cache_hits=sum(s.cache_hits for s in stats),
            heads=methods.get("HEAD", 0),
            other=sum(methods.values()) - methods.get("HEAD", 0) - sum(s.gets for s in stats),
            pyramids=len(stats),
        )

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)

    def stop_when_told() -> None:
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_when_told, daemon=True).start()
    print(f"{_READY}http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/iiif_load.py")
    commands = parser.add_subparsers(dest="mode", required=True)
    tiff = commands.add_parser("tiff", help="write the serving TIFF of SOURCE to TARGET")
    tiff.add_argument("source", type=Path)
    tiff.add_argument("target", type=Path)
    commands.add_parser("s3", help="run the moto server until stdin closes")
    commands.add_parser("serve", help="run the app until stdin closes")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: app/ and config.py
    if args.mode == "tiff":
        _child_tiff(args.source, args.target)
    elif args.mode == "s3":
        _child_s3()
    else:
        _child_serve()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
