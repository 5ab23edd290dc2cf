"""Measurement: our ``convert`` against plain libvips dzsave, on the same image and libvips build.

The reference is the least work that produces a Deep Zoom pyramid at all:
``vips dzsave IN OUT --tile-size 512 --overlap 0 --suffix .jpg[Q=85]``, run
through pyvips because the pyvips binary wheel ships no ``vips`` program
(same libvips, same threads, same JPEG encoder). The candidate does the whole
job the target names: header checks, Deep Zoom, IIIF level 0, sizes, info.json
and exiftool metadata. Their time ratio is the price of everything beyond dzsave.
A third side adds the per-image IIIF manifest (on by default, but not part of
the target): the ratio of the two candidates shows what the manifest costs,
which is mostly iiif-prezi3's import, paid once per process.

Runs alternate between the sides (see ``_order``) so drifting machine noise
(thermal, page cache, a neighbour's job) lands on every side alike.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from proc import ProcessStats, run_measured
from results import BenchImage, Column, Context, Section, Target, set_aside, summary

TILE_SIZE = 512
QUALITY = 85
MAX_RATIO = 1.3
# A ~1 s conversion is the noisiest to time and the cheapest to repeat: images under SMALL_MP get at least
# SMALL_IMAGE_RUNS runs per side whatever --runs says (nine cost about 20 s for the 48 MP image).
SMALL_MP = 100
SMALL_IMAGE_RUNS = 9
SIDES = ("reference", "candidate", "+manifest")

REFERENCE_SCRIPT = (
    "import pyvips,sys; pyvips.Image.new_from_file(sys.argv[1], access='sequential')"
    f".dzsave(sys.argv[2], tile_size={TILE_SIZE}, overlap=0, suffix='.jpg[Q={QUALITY}]')"
)
# The candidate prints "SRC -> ID: WxH fmt, N tiles in S.SSs": its own in-process time.
_SELF_REPORTED = re.compile(r"tiles in ([0-9.]+)s")

COLUMNS = [
    Column("image", "image"),
    Column("megapixels", "MP", "{:.0f}"),
    Column("reference_median_s", "ref median s", "{:.2f}"),
    Column("candidate_median_s", "cand median s", "{:.2f}"),
    Column("ratio", "ratio", "{:.2f}"),
    Column("with_manifest_median_s", "+manifest median s", "{:.2f}"),
    Column("with_manifest_ratio", "+manifest ratio", "{:.2f}"),
    Column("candidate_peak_rss_mb", "cand peak RSS MB", "{:.0f}"),
    Column("reference_peak_rss_mb", "ref peak RSS MB", "{:.0f}"),
    Column("ratio_target", f"ratio<={MAX_RATIO}"),
    Column("rss_target", "RSS target"),
]


def measure(ctx: Context) -> Section:
    section = Section("tiling", "Tiling: python -m app convert vs libvips dzsave", list(COLUMNS))
    for image in ctx.images:
        records: dict[str, list[dict]] = {side: [] for side in SIDES}
        runs = max(ctx.runs, SMALL_IMAGE_RUNS) if image.megapixels < SMALL_MP else ctx.runs
        for index in range(runs):
            for side in _order(index):
                records[side].append(_record(ctx, image, side, index, _run(ctx, image, side, index)))
        section.runs += [record for side in SIDES for record in records[side]]
        row, targets = _judge(image, records)
        section.rows.append(row)
        section.targets += targets
    section.notes.append(f'reference: {ctx.python} -c "{REFERENCE_SCRIPT}" IN OUT')
    section.notes.append(
        "candidate: python -m app convert IN --tiles-dir T --metadata-dir M "
        f"(TILE_SIZE={TILE_SIZE}, JPEG_QUALITY={QUALITY}, IIIF_MANIFESTS=false, SERVING_TIFF=false)"
    )
    section.notes.append(
        "+manifest: the same with IIIF_MANIFESTS=true (the default), i.e. also ID/manifest.json; "
        "its ratio is against the same reference"
    )
    section.notes.append(
        "peak RSS: max over runs of the Python process's ru_maxrss (os.wait4); cand: over both candidate sides"
    )
    section.notes.append(f"images under {SMALL_MP} MP: at least {SMALL_IMAGE_RUNS} runs per side, whatever --runs says")
    return section


def _order(index: int) -> tuple[str, ...]:
    """Alternate sides, reversing the order each round (R C M, M C R, R C M ...).

    A fixed order always runs the candidates later; on a machine that drifts
    (this VM's file system slows as runs create and delete trees) that bills
    the drift to them. Reversing cancels a linear drift.
    """
    return SIDES if index % 2 == 0 else SIDES[::-1]


def _run(ctx: Context, image: BenchImage, side: str, index: int) -> tuple[ProcessStats, Path]:
    out = _fresh_dir(ctx, image, side, index)
    if side == "reference":
        cmd = [ctx.python, "-c", REFERENCE_SCRIPT, str(image.path), str(out / "tiles" / "out")]
    else:
        cmd = [
            ctx.python,
            "-m",
            "app",
            "convert",
            str(image.path),
            "--tiles-dir",
            str(out / "tiles"),
            "--metadata-dir",
            str(out / "metadata"),
        ]
    stats = run_measured(cmd, log_dir=out / "logs", cwd=ctx.repo, env=_child_env(manifest=side == "+manifest"))
    return stats, out / "tiles"


def _child_env(manifest: bool) -> dict[str, str]:
    """Pin the settings the reference hard-codes, so a developer's TILE_SIZE=256 cannot skew the ratio.

    The target is defined for Deep Zoom + IIIF + metadata, so the outputs beyond them are off: the serving
    TIFF of the dynamic IIIF endpoint always, the manifest except on the "+manifest" side.
    """
    return {
        **os.environ,
        "TILE_SIZE": str(TILE_SIZE),
        "JPEG_QUALITY": str(QUALITY),
        "SERVING_TIFF": "false",
        "IIIF_MANIFESTS": str(manifest).lower(),
    }


def _fresh_dir(ctx: Context, image: BenchImage, side: str, index: int) -> Path:
    """An empty output folder per run: leftovers would change the work (the candidate prunes stale tiles).
    Nothing is deleted until the last measurement (``results.set_aside``)."""
    out = ctx.work_dir / "tiling" / image.key / f"{side}-{index + 1}"
    set_aside(ctx, out)
    (out / "tiles").mkdir(parents=True)
    return out


def _record(
    ctx: Context, image: BenchImage, side: str, index: int, result: tuple[ProcessStats, Path]
) -> dict[str, Any]:
    """One run as a JSON-ready dict, its outputs counted."""
    stats, tiles = result
    files, unique_bytes = _count_output(tiles)
    record = {
        "image": image.key,
        "side": side,
        "run": index + 1,
        "seconds": round(stats.seconds, 3),
        "peak_rss_mb": round(stats.peak_rss_mb, 1),
        "jpeg_files": files,
        "unique_mb": round(unique_bytes / 2**20, 1),
    }
    match = _SELF_REPORTED.search(stats.stdout)
    if match:
        record["self_reported_s"] = float(match.group(1))
    ctx.log(
        f"  {image.key:>6} {side:<9} run {index + 1}: {stats.seconds:7.2f} s  "
        f"peak RSS {stats.peak_rss_mb:6.0f} MB  {files} jpg, {record['unique_mb']} MB"
        + (f"  (self-reported {record['self_reported_s']:.2f} s)" if "self_reported_s" in record else "")
    )
    return record


def _count_output(root: Path) -> tuple[int, int]:
    """JPEG files and their bytes, counting hard-linked IIIF tiles once (they share the Deep Zoom bytes)."""
    files, seen, total = 0, set(), 0
    for path in root.rglob("*.jpg"):
        files += 1
        st = path.stat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return files, total


def _judge(image: BenchImage, records: dict[str, list[dict]]) -> tuple[dict, list[Target]]:
    seconds = {side: summary([r["seconds"] for r in records[side]]) for side in SIDES}
    ratio = seconds["candidate"]["median"] / seconds["reference"]["median"]
    cand_rss = max(r["peak_rss_mb"] for side in ("candidate", "+manifest") for r in records[side])
    targets = [Target("time ratio candidate/reference", image.key, ratio, "<=", MAX_RATIO)]
    if image.rss_limit_mb is not None:
        targets.append(Target("candidate peak RSS", image.key, cand_rss, "<", image.rss_limit_mb, " MB"))
    row = {
        "image": image.key,
        "megapixels": image.megapixels,
        "reference_median_s": seconds["reference"]["median"],
        "candidate_median_s": seconds["candidate"]["median"],
        "ratio": ratio,
        "with_manifest_median_s": seconds["+manifest"]["median"],
        "with_manifest_ratio": seconds["+manifest"]["median"] / seconds["reference"]["median"],
        "candidate_peak_rss_mb": cand_rss,
        "reference_peak_rss_mb": max(r["peak_rss_mb"] for r in records["reference"]),
        "ratio_target": _verdict(targets[0]),
        "rss_target": f"{_verdict(targets[1])} (<{image.rss_limit_mb:g} MB)" if len(targets) > 1 else "n/a",
        "reference_seconds": seconds["reference"],
        "candidate_seconds": seconds["candidate"],
        "with_manifest_seconds": seconds["+manifest"],
    }
    return row, targets


def _verdict(target: Target) -> str:
    return "PASS" if target.passed else "MISS"
