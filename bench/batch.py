"""Measurement: a batch of ordinary pages, one ``python -m app convert`` call against a loop of plain dzsave.

Archives convert many 5 to 30 MP pages, not one huge image. Fifty photo-like
pages of 2500x2000 (``tooling.synth``, one seed per page, made once into
``bench/data/pages-2500x2000/``) are converted three ways, each one process
over all fifty files, alternating and reversing the order each round:

- reference: plain libvips ``dzsave`` in a loop in one Python process (512 px
  tiles, overlap 0, JPEG quality 85): Deep Zoom alone;
- layouts: ``python -m app convert PAGES...`` with ``SERVING_TIFF=false
  IIIF_MANIFESTS=false``: Deep Zoom, IIIF level 0 and the metadata
  (target: within 1.1x of the loop);
- defaults: the same call with the default settings, i.e. also the serving
  TIFF and the per-image manifest (target: within 1.3x).

Storage: bytes stored per image (every file written, public or private, each
name counted as S3 would store it) against the tile objects alone (the Deep
Zoom tiles and their IIIF names, the same bytes under a second key in S3)
(target: within 1.15x).

Where a page's time goes: ``python bench/batch.py profile PAGES...`` runs
``app.pipeline.convert`` over the same pages in one process and sums its laps
(``Conversion.timings``), with the default settings; untimed by the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from proc import ProcessStats, run_measured
from results import Column, Context, Section, Target, set_aside, summary

REPO = Path(__file__).resolve().parent.parent
SECTION = "batch"  # what run.py's --only selects
IMAGE_KEYS: tuple[str, ...] = ()  # makes its own inputs
PAGES, WIDTH, HEIGHT = 50, 2500, 2000
TILE_SIZE, QUALITY = 512, 85
TARGETS = {"layouts": 1.1, "defaults": 1.3}
STORAGE_TARGET = 1.15
SIDES = ("reference", "layouts", "defaults")
REFERENCE_SCRIPT = (
    "import pyvips,sys,pathlib\n"
    "out = pathlib.Path(sys.argv[1])\n"
    "for src in sys.argv[2:]:\n"
    "    pyvips.Image.new_from_file(src, access='sequential')"
    f".dzsave(str(out / pathlib.Path(src).stem), tile_size={TILE_SIZE}, overlap=0, suffix='.jpg[Q={QUALITY}]')\n"
)
_RESULT = "RESULT "

COLUMNS = [
    Column("side", "side"),
    Column("runs", "runs"),
    Column("median_s", "median s", "{:.2f}"),
    Column("spread", "min-max s"),
    Column("per_page_ms", "ms per page", "{:.0f}"),
    Column("ratio", "x dzsave loop", "{:.2f}"),
    Column("cpu_ratio", "CPU x dzsave loop", "{:.2f}"),
    Column("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    Column("stored_kb", "KB stored per image", "{:.0f}"),
    Column("tile_kb", "KB of tile objects", "{:.0f}"),
    Column("storage_ratio", "stored/tiles", "{:.3f}"),
    Column("objects", "objects per image", "{:.0f}"),
]


# The measurement (runs in the benchmark process) --------------------------------------------------
def measure(ctx: Context) -> Section:
    pages = _pages(ctx, ctx.repo / "bench" / "data" / f"pages-{WIDTH}x{HEIGHT}")
    section = Section(
        SECTION,
        f"Batch: {PAGES} pages of {WIDTH}x{HEIGHT} in one python -m app convert call vs a dzsave loop",
        list(COLUMNS),
    )
    work = ctx.work_dir / "batch"
    records: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for index in range(ctx.runs):
        for side in SIDES if index % 2 == 0 else SIDES[::-1]:
            records[side].append(_run(ctx, pages, work, side, index))
    reference = statistics.median(r["seconds"] for r in records["reference"])
    reference_cpu = statistics.median(r["cpu_seconds"] for r in records["reference"])
    for side in SIDES:
        seconds = summary([r["seconds"] for r in records[side]])
        last = records[side][-1]
        section.rows.append(
            {
                "side": side,
                "runs": len(records[side]),
                "median_s": seconds["median"],
                "spread": f"{seconds['min']:.2f}-{seconds['max']:.2f}",
                "per_page_ms": seconds["median"] / PAGES * 1000,
                "ratio": seconds["median"] / reference,
                "cpu_ratio": statistics.median(r["cpu_seconds"] for r in records[side]) / reference_cpu,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in records[side]),
                "stored_kb": last["stored_bytes"] / PAGES / 1024,
                "tile_kb": last["tile_bytes"] / PAGES / 1024,
                "storage_ratio": last["stored_bytes"] / last["tile_bytes"] if side != "reference" else None,
                "objects": last["objects"] / PAGES,
                "seconds": seconds,
                "stored_by_kind_kb": {k: v / PAGES / 1024 for k, v in last["by_kind"].items()},
            }
        )
        section.runs += records[side]
    by_side = {row["side"]: row for row in section.rows}
    for side, limit in TARGETS.items():
        section.targets.append(
            Target(f"{side}: one convert call / the dzsave loop", f"{PAGES}p", by_side[side]["ratio"], "<=", limit, "x")
        )
    for side in ("layouts", "defaults"):
        section.targets.append(
            Target(
                f"{side}: bytes stored per image / its tile objects (both layouts' names)",
                f"{PAGES}p",
                by_side[side]["storage_ratio"],
                "<=",
                STORAGE_TARGET,
                "x",
                digits=3,
            )
        )
    profile = _profile(ctx, pages, work)
    section.notes += _notes(ctx, by_side, profile)
    return section


def _pages(ctx: Context, folder: Path) -> list[Path]:
    """The fifty pages, generated on first use (one seed each, so no two pages share their pixels)."""
    import synth

    pages = [folder / f"page-{n:02d}.jpg" for n in range(1, PAGES + 1)]
    missing = [page for page in pages if not page.exists()]
    if missing:
        ctx.log(f"  generating {len(missing)} pages of {WIDTH}x{HEIGHT} into {folder} ...")
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        for page in missing:
            synth.generate(page, WIDTH, HEIGHT, seed=int(page.stem.split("-")[1]))
        ctx.log(f"  done in {time.perf_counter() - started:.1f} s")
    return pages


def _run(ctx: Context, pages: list[Path], work: Path, side: str, index: int) -> dict[str, Any]:
    out = work / f"{side}-{index + 1}"
    set_aside(ctx, out)  # nothing is deleted until the last measurement: see results.set_aside
    (out / "tiles").mkdir(parents=True)
    if side == "reference":
        cmd = [ctx.python, "-c", REFERENCE_SCRIPT, str(out / "tiles"), *map(str, pages)]
    else:
        cmd = [ctx.python, "-m", "app", "convert", *map(str, pages)]
        cmd += ["--tiles-dir", str(out / "tiles"), "--metadata-dir", str(out / "metadata")]
    stats = run_measured(cmd, log_dir=out / "logs", cwd=ctx.repo, env=_env(side, out))
    record = {"image": f"{PAGES}p", "side": side, "run": index + 1, **_record(stats), **stored(out, side)}
    ctx.log(
        f"  {PAGES}p {side:<9} run {index + 1}: {stats.seconds:7.2f} s  peak RSS {stats.peak_rss_mb:4.0f} MB  "
        f"{record['stored_bytes'] / PAGES / 1024:.0f} KB stored per image, "
        f"tile objects {record['tile_bytes'] / PAGES / 1024:.0f} KB"
    )
    return record


def _record(stats: ProcessStats) -> dict[str, Any]:
    return {
        "seconds": round(stats.seconds, 3),
        "cpu_seconds": round(stats.cpu_seconds, 3),
        "peak_rss_mb": round(stats.peak_rss_mb, 1),
    }


def _env(side: str, out: Path) -> dict[str, str]:
    env = {**os.environ, "TILE_SIZE": str(TILE_SIZE), "JPEG_QUALITY": str(QUALITY), "WORK_DIR": str(out)}
    for name in ("SERVING_TIFF", "IIIF_MANIFESTS", "DERIVATIVES_FILE"):  # a developer's own settings stay out
        env.pop(name, None)
    if side == "layouts":
        env.update(SERVING_TIFF="false", IIIF_MANIFESTS="false")
    return env


def stored(out: Path, side: str) -> dict[str, Any]:
    """What a run leaves, as S3 would store it: every file under every name it has (a hard-linked IIIF tile is a
    second object), in bytes; ``tile_bytes`` are the tile objects alone (the Deep Zoom tiles and the IIIF tiles'
    names, as ``app.pipeline.tiles.iiif_names`` gives them), ``by_kind`` the rest by what it is."""
    tile_names = _tile_names(out / "tiles")
    files = [path for folder in (out / "tiles", out / "metadata") if folder.is_dir() for path in folder.rglob("*")]
    by_kind: dict[str, int] = {}
    tile_bytes = objects = 0
    for path in files:
        if not path.is_file():
            continue
        objects += 1
        size = path.stat().st_size
        if path.is_relative_to(out / "tiles") and path.relative_to(out / "tiles").as_posix() in tile_names:
            tile_bytes += size
        else:
            by_kind[_kind(path, out, side)] = by_kind.get(_kind(path, out, side), 0) + size
    total = tile_bytes + sum(by_kind.values())
    return {"stored_bytes": total, "tile_bytes": tile_bytes, "objects": objects, "by_kind": by_kind}


def _tile_names(tiles: Path) -> set[str]:
    """Every tile object's path under ``tiles``: each page's Deep Zoom tiles (reference) and, where a IIIF layout
    is there, the IIIF names of the tiles at its scale factors."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from app.pipeline.tiles import iiif_names

    names: set[str] = set()
    for page in range(1, PAGES + 1):
        for dz_path, iiif_paths in iiif_names(f"page-{page:02d}", WIDTH, HEIGHT, TILE_SIZE).items():
            names.add(dz_path)
            if (tiles / iiif_paths[0]).exists():
                names.update(iiif_paths)
    names.update(str(p.relative_to(tiles)) for p in tiles.glob("*_files/*/*.jpg"))  # levels below IIIF's
    return names


def _kind(path: Path, out: Path, side: str) -> str:
    relative = path.relative_to(out).as_posix()
    if relative.startswith("metadata/"):
        return "metadata JSON"
    if path.suffix == ".tif":
        return "serving TIFF"
    if path.name == "manifest.json":
        return "manifest"
    if path.suffix in (".json", ".dzi", ".xml"):
        return "info.json and .dzi"
    if "/full/" in relative:
        return "sizes and full/max"
    return "other"


def _profile(ctx: Context, pages: list[Path], work: Path) -> dict[str, Any]:
    """Where a page's time goes with the default settings: ``convert``'s laps summed over the pages."""
    out = work / "profile"
    set_aside(ctx, out)
    out.mkdir(parents=True)
    stats = run_measured(
        [ctx.python, str(Path(__file__).resolve()), "profile", str(out), *map(str, pages)],
        log_dir=out / "logs",
        cwd=ctx.repo,
        env=_env("defaults", out),
    )
    line = next(line for line in stats.stdout.splitlines() if line.startswith(_RESULT))
    profile = json.loads(line[len(_RESULT) :])
    laps = ", ".join(f"{name} {ms:.0f}" for name, ms in profile["ms_per_page"].items())
    ctx.log(f"  profile (default settings, ms per page): {laps}")
    return profile


def _notes(ctx: Context, by_side: dict[str, dict[str, Any]], profile: dict[str, Any]) -> list[str]:
    defaults, layouts = by_side["defaults"], by_side["layouts"]
    extra = {k: v for k, v in defaults["stored_by_kind_kb"].items()}
    laps = profile["ms_per_page"]
    return [
        f"reference: python -c <a loop of pyvips dzsave(tile_size={TILE_SIZE}, overlap=0, "
        f".jpg[Q={QUALITY}])> OUT PAGES... (bench/batch.py REFERENCE_SCRIPT); one process for all {PAGES} pages",
        f"layouts: python -m app convert PAGES... --tiles-dir T --metadata-dir M with SERVING_TIFF=false "
        f"IIIF_MANIFESTS=false; defaults: the same call with the default settings (TILE_SIZE={TILE_SIZE}, "
        f"JPEG_QUALITY={QUALITY} on every side)",
        "stored: every file written (tiles, sizes, full/max, info.json, .dzi, manifest, serving TIFF, metadata JSON), "
        "each name counted once as its own object, as in S3; tile objects: the Deep Zoom tiles and their IIIF names",
        "defaults, KB per image beyond the tile objects: "
        + ", ".join(f"{kind} {kb:.0f}" for kind, kb in sorted(extra.items(), key=lambda kv: -kv[1]))
        + f" (layouts: {layouts['stored_kb'] - layouts['tile_kb']:.0f} KB in all)",
        "where a page's time goes with the default settings, ms per page, app.pipeline.convert's laps summed over "
        f"the {PAGES} pages in one process (python bench/batch.py profile): "
        + ", ".join(f"{name} {ms:.0f}" for name, ms in laps.items())
        + f"; publish (the CLI's renames) not included; total {sum(laps.values()):.0f}",
        "CPU: user and system seconds of the process and of the children it waited for (exiftool), median, over the "
        "reference's: on 2 cores a side that needs more CPU than the reference cannot hide all of it beside dzsave",
        "runs alternate, reversing the order each round; medians",
    ]


# The child (python bench/batch.py profile OUT PAGES...) ---------------------------------------------------
def _child_profile(out: Path, pages: list[Path]) -> dict[str, Any]:
    from app.pipeline import convert
    from config import Settings

    settings = Settings.from_env()
    totals: dict[str, float] = {}
    for page in pages:
        target = out / page.stem
        conversion = convert(page, target, settings, page.stem)
        for name, seconds in conversion.timings.items():
            totals[name] = totals.get(name, 0.0) + seconds
    return {"ms_per_page": {name: round(seconds / len(pages) * 1000, 1) for name, seconds in totals.items()}}


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/batch.py")
    parser.add_argument("mode", choices=["profile"])
    parser.add_argument("out", type=Path)
    parser.add_argument("pages", type=Path, nargs="+")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: app/ and config.py
    print(_RESULT + json.dumps(_child_profile(args.out, args.pages)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
