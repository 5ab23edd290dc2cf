"""Measurement: our dynamic IIIF endpoint side by side with samvera's ``iiif-processor`` (serverless-iiif's processor).

The peer a museum would deploy instead of ``/iiif/3`` is serverless-iiif,
whose image processing is the npm package ``iiif-processor`` (on ``sharp``,
i.e. libvips). Each serves a photo-like image (100 MP and 430 MP;
``--iiif-peer-images`` picks them) from what it reads, on the same S3
stand-in (``bench/s3_standin.py``, in a process of its own, ``--s3-latency-ms``
per request), for the same requests at the same concurrency:

- ours: ``app.web.create_app`` on werkzeug's threaded server
  (``python bench/iiif_load.py serve``) over everything ``python -m app
  convert`` publishes for the image and its job record, as deployed: a request
  for exactly a tile is answered with that tile as published (by its IIIF name
  while the record is read, in a process that has not seen the image), any
  other is rendered from the Deep Zoom tiles it touches, one GET per tile, a
  tile cache per process;
- peer: the pyramidal TIFF it needs (``derivatives/ID.tif``, as
  ``SERVING_TIFF`` writes it: ``app.pipeline.tiles.write_serving_tiff``) served by
  ``bench/iiif_peer_server.js`` on Node, ``iiif-processor`` pinned at
  ``PEER_VERSION``, installed by the benchmark with npm into
  ``bench/data/iiif-peer-node/``; its stream resolver GETs the whole object per
  request, as serverless-iiif's does, and its dimension function reads the
  page sizes from the object's metadata (one HEAD), serverless-iiif's best case.

The request mix (fixed seed): viewer tiles at random zoom levels (every tile at
every scale factor equally likely), ``full/!1024,1024``, and random crops at
``pct:`` scaled to ``!1024,1024``. Each run starts a fresh server: its first
request alone (``first ms``: a tile, as a viewer's first), then the mix
(``cold``), then the same mix again (``warm``). Sides alternate, the order
reversed each round; medians over runs. Bytes read from S3 are what the
stand-in sent (its ``bytes_out``), per request; peak RSS is the server
process's ``VmHWM`` after its passes.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import iiif_load
from proc import RunFailed, run_measured
from results import Column, Context, Section, Target

SECTION = "iiif-peer"  # what run.py's --only selects
IMAGE_KEYS: tuple[str, ...] = ()  # makes its own inputs (the 430 MP JPEG is the one run.py caches)
SIZES = {"100mp": (12000, 8400), "430mp": (24000, 18000)}
DEFAULT_IMAGES = ("100mp", "430mp")
DEFAULT_REQUESTS = 100
PEER_PACKAGE, PEER_VERSION = "iiif-processor", "7.0.0"
SHARP_VERSION = "0.34.5"  # iiif-processor's libvips binding (an optional dependency, ^0.34.4): pinned as well
IMAGE_ID = "peer"
TILE_SIZE, QUALITY = 512, 85
SEED = 21  # issue 21
MIX = (("tile", 0.8), ("full", 0.1), ("crop", 0.1))
SIDES = ("ours", "peer")
PASSES = ("first", "cold", "warm")
_READY = "READY "

COLUMNS = [
    Column("image", "image"),
    Column("side", "side"),
    Column("pass", "pass"),
    Column("requests", "requests"),
    Column("first_ms", "first ms", "{:.0f}"),
    Column("rps", "req/s", "{:.1f}"),
    Column("p50_ms", "p50 ms", "{:.0f}"),
    Column("p99_ms", "p99 ms", "{:.0f}"),
    Column("errors", "errors"),
    Column("s3_kb", "S3 KB/req", "{:.0f}"),
    Column("s3_gets", "S3 GETs/req", "{:.1f}"),
    Column("peak_rss_mb", "peak RSS MB", "{:.0f}"),
]


# The measurement (runs in the benchmark process) --------------------------------------------------
def measure(ctx: Context) -> Section:
    keys = tuple(ctx.options.get("iiif_peer_images") or DEFAULT_IMAGES)
    count = int(ctx.options.get("iiif_peer_requests") or DEFAULT_REQUESTS)
    clients = int(ctx.options.get("iiif_clients") or iiif_load.DEFAULT_CLIENTS)
    latency_ms = float(ctx.options.get("s3_latency_ms", 25.0))
    section = Section(
        SECTION,
        f"IIIF: our dynamic endpoint vs iiif-processor {PEER_VERSION} (serverless-iiif), same TIFF, same S3 stand-in",
        list(COLUMNS),
    )
    if str(ctx.repo) not in sys.path:
        sys.path.insert(0, str(ctx.repo))
    node_modules = install_peer(ctx, ctx.repo / "bench" / "data" / "iiif-peer-node")
    work = ctx.work_dir / "iiif-peer"
    shutil.rmtree(work, ignore_errors=True)
    for key in keys:
        width, height = SIZES[key]
        tiff, pages = _prepare(ctx, key, width, height)
        tiles_dir = _prepare_tiles(ctx, key, tiff)
        sequence = request_mix(width, height, count)
        with _Server(ctx, _standin_cmd(ctx, latency_ms), work / key / "logs-s3", os.environ.copy()) as s3:
            _upload(s3.address, tiff, pages)
            keys = _publish_tiles(s3.address, tiles_dir, width, height)
            dz_keys = [name for name in keys if name.startswith(f"{IMAGE_ID}_files/")]
            passes: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for index in range(ctx.runs):
                for side in SIDES if index % 2 == 0 else SIDES[::-1]:
                    folder = work / key / f"{side}-{index}"
                    run = _one_run(ctx, side, s3.address, node_modules, sequence, clients, folder)
                    for name, result in run.items():
                        passes.setdefault((side, name), []).append(result)
        rows = sorted(
            (_row(key, side, name, results, clients) for (side, name), results in passes.items()),
            key=lambda row: (SIDES.index(row["side"]), PASSES.index(row["pass"])),
        )
        section.rows += rows
        section.runs += [
            _run_record(key, side, name, result) for (side, name), results in passes.items() for result in results
        ]
        section.targets += _targets(key, rows)
        section.notes.append(
            f"{key}: {width}x{height}; ours: {len(dz_keys)} Deep Zoom tiles, "
            f"{sum((tiles_dir / k).stat().st_size for k in dz_keys) / 2**20:.0f} MB; peer: TIFF "
            f"{tiff.stat().st_size / 2**20:.0f} MB, {len(pages)} pages; "
            f"{len(sequence)} requests: " + ", ".join(f"{n} {kind}" for kind, n in _mix_counts(sequence).items())
        )
    section.notes += _notes(ctx, latency_ms, clients, node_modules)
    if not ctx.keep:
        shutil.rmtree(work, ignore_errors=True)
    return section


def install_peer(ctx: Context, cache: Path) -> Path:
    """``iiif-processor`` at ``PEER_VERSION`` (and the sharp it brings) in ``cache``, with npm, once."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RunFailed("iiif-peer needs Node.js and npm: scripts/bootstrap.sh --bench installs them from Debian")
    wanted = {PEER_PACKAGE: PEER_VERSION, "sharp": SHARP_VERSION}
    if all(_installed_version(cache, name) == version for name, version in wanted.items()):
        return cache / "node_modules"
    ctx.log(f"  installing {PEER_PACKAGE}@{PEER_VERSION} and sharp@{SHARP_VERSION} with npm into {cache} ...")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "package.json").write_text(json.dumps({"private": True}) + "\n")
    run_measured(
        ["npm", "install", "--no-audit", "--no-fund", "--save-exact", *(f"{n}@{v}" for n, v in wanted.items())],
        log_dir=cache / "logs",
        cwd=cache,
    )
    return cache / "node_modules"


def _installed_version(cache: Path, package: str) -> str | None:
    try:
        return json.loads((cache / "node_modules" / package / "package.json").read_text()).get("version")
    except (OSError, ValueError):
        return None


def request_mix(width: int, height: int, count: int) -> list[str]:
    """``count`` request paths (``ID/region/size/0/default.jpg``), a fixed-seed draw from ``MIX``."""
    from app.iiif import grid

    every = [grid.image_path(IMAGE_ID, width, height, t.region, t.size) for t in grid.tiles(width, height, TILE_SIZE)]
    rng = random.Random(SEED)
    kinds = rng.choices([kind for kind, _ in MIX], weights=[share for _, share in MIX], k=count)
    paths = []
    for kind in kinds:
        if kind == "tile":
            paths.append(rng.choice(every))
        elif kind == "full":
            paths.append(f"{IMAGE_ID}/full/!1024,1024/0/default.jpg")
        else:
            w, h = rng.randint(5, 40), rng.randint(5, 40)
            x, y = rng.randint(0, 100 - w), rng.randint(0, 100 - h)
            paths.append(f"{IMAGE_ID}/pct:{x},{y},{w},{h}/!1024,1024/0/default.jpg")
    return paths


def _mix_counts(sequence: list[str]) -> dict[str, int]:
    kinds = ["crop" if "/pct:" in p else "full" if "/full/" in p else "tile" for p in sequence]
    return {kind: kinds.count(kind) for kind, _ in MIX}


def _one_run(
    ctx: Context, side: str, s3: str, node_modules: Path, sequence: list[str], clients: int, work: Path
) -> dict[str, dict[str, Any]]:
    """A fresh server of ``side``: its first request alone, the cold pass, the warm pass."""
    if side == "ours":
        cmd = [ctx.python, str(Path(iiif_load.__file__).resolve()), "serve"]
        env = {**iiif_load._env(s3), "IIIF_MANIFESTS": "false"}
    else:
        cmd = ["node", str(Path(__file__).resolve().with_name("iiif_peer_server.js")), s3, iiif_load.TILES_BUCKET]
        cmd.append("derivatives/")
        env = {**os.environ, "NODE_PATH": str(node_modules)}
    first = next(path for path in sequence if "/full/" not in path and "/pct:" not in path)
    results: dict[str, dict[str, Any]] = {}
    with _Server(ctx, cmd, work / "logs", env) as server:
        urls = [f"{server.address}/iiif/3/{path}" for path in sequence]
        before = _stats(s3)
        results["first"] = _counted(iiif_load.run_pass([f"{server.address}/iiif/3/{first}"], 1), before, _stats(s3))
        for name in ("cold", "warm"):
            before = _stats(s3)
            results[name] = _counted(iiif_load.run_pass(urls, clients), before, _stats(s3))
        rss = server.peak_rss_mb()
    for name, result in results.items():
        result["peak_rss_mb"] = rss
        ctx.log(f"  {side:<4} {name:<5} {iiif_load._describe(result)}; S3 {result['s3_bytes'] / 1024:.0f} KB")
    return results


def _counted(result: dict[str, Any], before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    result["s3_bytes"] = after.get("bytes_out", 0) - before.get("bytes_out", 0)
    result["s3_gets"] = after.get("GET", 0) - before.get("GET", 0)
    result["s3_heads"] = after.get("HEAD", 0) - before.get("HEAD", 0)
    return result


def _row(image: str, side: str, name: str, runs: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    def median(figure) -> float | None:
        values = [v for v in (figure(r) for r in runs) if v is not None]
        return statistics.median(values) if values else None

    def latencies(result: dict[str, Any]) -> list[float]:
        return [x["ms"] for x in result["ok"]]

    first = name == "first"
    return {
        "image": image,
        "side": side,
        "pass": name,
        "requests": runs[0]["requests"],
        "first_ms": median(lambda r: statistics.median(latencies(r)) if r["ok"] else None) if first else None,
        "rps": None if first else median(lambda r: r["requests"] / r["wall_s"]),
        "p50_ms": median(lambda r: statistics.median(latencies(r)) if r["ok"] else None),
        "p99_ms": None if first else median(lambda r: iiif_load.percentile(latencies(r), 0.99) if r["ok"] else None),
        "errors": sum(r["errors"] for r in runs),
        "s3_kb": median(lambda r: r["s3_bytes"] / r["requests"] / 1024),
        "s3_gets": median(lambda r: r["s3_gets"] / r["requests"]),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "clients": 1 if first else clients,
    }


def _targets(image: str, rows: list[dict[str, Any]]) -> list[Target]:
    """430 MP: warm p50 at most half the peer's, cold first tile at least 10x faster; 100 MP: no worse."""
    by = {(r["side"], r["pass"]): r for r in rows}
    if not all(k in by for k in (("ours", "warm"), ("peer", "warm"), ("ours", "first"), ("peer", "first"))):
        return []
    warm = by[("ours", "warm")]["p50_ms"] / by[("peer", "warm")]["p50_ms"]
    first = by[("ours", "first")]["first_ms"] / by[("peer", "first")]["first_ms"]
    large = image == "430mp"
    return [
        Target("warm p50 latency, ours / peer", image, warm, "<=", 0.5 if large else 1.0, "x"),
        Target("cold first-tile latency, ours / peer", image, first, "<=", 0.1 if large else 1.0, "x"),
    ]


def _run_record(image: str, side: str, name: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "image": image,
        "side": f"{side} {name}",
        "seconds": round(result["wall_s"], 3),
        "requests": result["requests"],
        "errors": result["errors"],
        "error_kinds": result["error_kinds"],
        "latencies_ms": [round(x["ms"], 2) for x in result["ok"]],
        "s3_bytes": result["s3_bytes"],
        "s3_gets": result["s3_gets"],
        "s3_heads": result["s3_heads"],
        "peak_rss_mb": result["peak_rss_mb"],
    }


def _sharp_libvips(node_modules: Path) -> str | None:
    script = "console.log(require('sharp').versions.vips)"
    try:
        done = subprocess.run(
            ["node", "-e", script],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NODE_PATH": str(node_modules)},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _notes(ctx: Context, latency_ms: float, clients: int, node_modules: Path) -> list[str]:
    return [
        f"S3: bench/s3_standin.py in a process of its own, {latency_ms:g} ms per request, in memory; both servers "
        f"and the {clients} client threads (keep-alive sessions) share the machine's {os.cpu_count()} cores",
        "ours: python bench/iiif_load.py serve (app.web.create_app, werkzeug threaded), IIIF_BLOCK_CACHE_MB default, "
        "over what python -m app convert publishes (every tile and size under each of its names) and the job "
        "record, as deployed: a request for exactly a tile is answered with the tile as published, any other "
        "rendered from the Deep Zoom tiles it touches; "
        f"peer: node bench/iiif_peer_server.js with {PEER_PACKAGE}@{PEER_VERSION} and sharp@{SHARP_VERSION} "
        f"(libvips {_sharp_libvips(node_modules) or '?'}; npm, into bench/data/iiif-peer-node/), node "
        + (_first_line(["node", "--version"]) or "?"),
        "first ms: one viewer tile alone on a fresh server process (cold: no tile cache, no connections, the "
        "record unread); cold: the mix right after it; warm: the same mix again",
        "S3 KB/req: object bytes the stand-in sent for the pass / requests (ours: the record and the tiles; the "
        "peer reads the whole TIFF per request: serverless-iiif's stream resolver); S3 GETs/req: GET requests the "
        "stand-in answered / requests",
        "peak RSS: the server process's VmHWM after its passes, max over runs",
        "errors: any answer but 200, summed over the runs; iiif-processor answers some pct: crops scaled down to "
        "!1024,1024 with 400 'Requested size requires upscaling' (its page choice picks a page smaller than the "
        "output), which our endpoint renders; they count as errors and not in its latencies",
        "the 430 MP image makes this section long (its TIFF and tiles are made once and cached; the peer streams "
        "the whole TIFF for every request): --iiif-peer-images 100mp runs the 100 MP image alone, "
        "--iiif-peer-requests sets "
        "the requests per pass",
    ]


# Setup (cached) ------------------------------------------------------------------------------------
def _prepare(ctx: Context, key: str, width: int, height: int) -> tuple[Path, list[tuple[int, int]]]:
    """The photo-like JPEG (shared with run.py's cache) and its serving TIFF, made once; the TIFF's page sizes."""
    import pyvips

    data = ctx.repo / "bench" / "data"
    import synth

    source = data / f"photo-{width}x{height}-q{synth.QUALITY}.jpg"
    if not source.exists():
        ctx.log(f"  generating {source.name} ...")
        run_measured(
            [ctx.python, str(Path(synth.__file__).resolve()), str(source), str(width), str(height)],
            log_dir=data / "logs" / f"generate-{key}",
        )
    tiff = data / f"iiif-peer-{key}" / f"{IMAGE_ID}.tif"
    stamp = tiff.with_suffix(".stamp")
    expected = f"{source.stat().st_size} {source.stat().st_mtime_ns} q{QUALITY}"
    if not (tiff.is_file() and stamp.is_file() and stamp.read_text() == expected):
        ctx.log(f"  making the serving TIFF of {source.name} ...")
        tiff.parent.mkdir(parents=True, exist_ok=True)
        partial = tiff.with_name(tiff.name + ".partial")
        made = run_measured(
            [ctx.python, str(Path(iiif_load.__file__).resolve()), "tiff", str(source), str(partial)],
            log_dir=tiff.parent / "logs",
            cwd=ctx.repo,
        )
        partial.replace(tiff)
        stamp.write_text(expected)
        ctx.log(f"  done in {made.seconds:.1f} s, {tiff.stat().st_size / 2**20:.0f} MB")
    count = pyvips.Image.new_from_file(str(tiff)).get("n-pages")
    pages = []
    for page in range(count):
        header = pyvips.Image.new_from_file(str(tiff), page=page)
        pages.append((header.width, header.height))
    return tiff, pages


def _prepare_tiles(ctx: Context, key: str, tiff: Path) -> Path:
    """Our side's input: the image converted by ``python -m app convert`` (Deep Zoom, as published), made once
    from the TIFF's source JPEG."""
    import synth

    width, height = SIZES[key]
    source = ctx.repo / "bench" / "data" / f"photo-{width}x{height}-q{synth.QUALITY}.jpg"
    folder = tiff.parent / "published"
    stamp = folder / "stamp"
    expected = f"{source.stat().st_size} {source.stat().st_mtime_ns} q{QUALITY} t{TILE_SIZE}"
    if stamp.is_file() and stamp.read_text() == expected:
        return folder / "tiles"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "work").mkdir(parents=True)
    ctx.log(f"  converting {source.name} (python -m app convert) ...")
    env = {**iiif_load._env(None), "IIIF_MANIFESTS": "false", "WORK_DIR": str(folder / "work")}
    made = run_measured(
        [ctx.python, "-m", "app", "convert", str(source), "--tiles-dir", str(folder / "tiles")]
        + ["--metadata-dir", str(folder / "metadata"), "--id", IMAGE_ID],
        log_dir=folder / "logs",
        cwd=ctx.repo,
        env=env,
    )
    shutil.rmtree(folder / "work", ignore_errors=True)
    stamp.write_text(expected)
    ctx.log(f"  done in {made.seconds:.1f} s")
    return folder / "tiles"


def _publish_tiles(endpoint: str, tiles_dir: Path, width: int, height: int) -> list[str]:
    """Our side's objects: every tile and size the conversion published, under each of its names, and the job
    record (``iiif_load.publish_for_endpoint``)."""
    keys = sorted(str(path.relative_to(tiles_dir)) for path in tiles_dir.rglob("*.jpg"))
    iiif_load.publish_for_endpoint(iiif_load._boto_client(endpoint), tiles_dir, IMAGE_ID, width, height, keys, (3,))
    return keys


def _upload(endpoint: str, tiff: Path, pages: list[tuple[int, int]]) -> None:
    """The buckets, and the TIFF where the peer reads it, with its page sizes for the peer's dimension function."""
    s3 = iiif_load._boto_client(endpoint)
    for bucket in (iiif_load.SOURCE_BUCKET, iiif_load.TILES_BUCKET, iiif_load.METADATA_BUCKET):
        s3.create_bucket(Bucket=bucket)
    key = f"derivatives/{IMAGE_ID}.tif"
    with tiff.open("rb") as body:
        s3.put_object(
            Bucket=iiif_load.TILES_BUCKET,
            Key=key,
            Body=body,
            ContentType="image/tiff",
            Metadata={"pages": ",".join(f"{w}x{h}" for w, h in pages)},
        )


def _standin_cmd(ctx: Context, latency_ms: float) -> list[str]:
    script = str(Path(__file__).resolve().with_name("s3_standin.py"))
    return [ctx.python, script, "--latency-ms", str(latency_ms), "--until-stdin-closes"]


def _stats(endpoint: str) -> dict[str, int]:
    import requests

    answer = requests.get(f"{endpoint}/__stats", timeout=30)
    answer.raise_for_status()
    return answer.json()


def _first_line(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class _Server:
    """A server child that prints its address first (``READY URL`` or the stand-in's ``... on URL ...``) and runs
    until its standard input closes (or, failing that, it is terminated)."""

    _ADDRESS = re.compile(r"(http://127\.0\.0\.1:\d+)")

    def __init__(self, ctx: Context, cmd: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.ctx, self.cmd, self.log_dir, self.env = ctx, cmd, log_dir, env
        self.address = ""

    def __enter__(self) -> _Server:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = (self.log_dir / "stderr.log").open("wb")
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.ctx.repo,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        line = self.proc.stdout.readline().decode()
        found = self._ADDRESS.search(line)
        if not found:
            self.__exit__()
            raise RunFailed(f"{' '.join(self.cmd)} did not start; see {self.log_dir / 'stderr.log'}")
        self.address = found.group(1)
        return self

    def peak_rss_mb(self) -> float:
        """The process's high-water mark of resident memory (VmHWM), in MB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def __exit__(self, *exc: object) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
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
