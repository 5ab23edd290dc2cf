"""Measurement: what publishing IIIF Image API 2.1 beside 3.0 costs (``IIIF_VERSIONS=2,3`` against ``3``).

2.1 reuses every encoded tile and size (no second encode): it adds objects,
each one more PUT of bytes already made, and one more ``info.json``. For the
48 MP image this section counts objects and bytes stored per image from the
job record, and times upload -> ``done`` on the latency-faithful stand-in
(``s3_standin.py``, ``--s3-latency-ms`` per request, no throughput cap) with
the default ``UPLOAD_WORKERS``, through the same child-process flow as the
``s3`` section (``s3_flow.py``: a warm-up, empty buckets, upload, event,
handler). The two settings alternate round by round, so drift lands on both.
"""

from __future__ import annotations

import statistics
from typing import Any

import s3_flow
from results import Column, Context, Section, summary

SECTION = "iiif2"  # what run.py's --only selects
IMAGE_KEYS = ("48mp",)
SETTINGS = ("3", "2,3")  # IIIF_VERSIONS, the reference first

COLUMNS = [
    Column("versions", "IIIF_VERSIONS"),
    Column("runs", "runs"),
    Column("objects", "objects"),
    Column("stored_mb", "stored MB", "{:.1f}"),
    Column("puts", "S3 PUTs"),
    Column("median_s", "upload->done s", "{:.2f}"),
    Column("spread", "min-max s"),
    Column("publish_s", "publish s", "{:.2f}"),
    Column("ratio", "x IIIF_VERSIONS=3", "{:.2f}"),
]


def measure(ctx: Context) -> Section:
    image = next(i for i in ctx.images if i.key in IMAGE_KEYS)
    latency_ms = float(ctx.options.get("s3_latency_ms", 25.0))
    section = Section(
        SECTION,
        f"IIIF Image API 2.1 beside 3.0: objects, bytes and upload time for the {image.megapixels:.0f} MP image "
        f"(stand-in, {latency_ms:g} ms per request)",
        list(COLUMNS),
    )
    from s3_standin import StandInS3  # imported here, as in s3_flow: only these sections need it

    runs: dict[str, list[dict[str, Any]]] = {versions: [] for versions in SETTINGS}
    with StandInS3(latency_ms / 1000) as standin:
        for index in range(ctx.runs):
            for versions in SETTINGS[:: 1 if index % 2 == 0 else -1]:
                runs[versions].append(_one_run(ctx, image, standin.url, versions, index))
    reference = summary([run["seconds"] for run in runs[SETTINGS[0]]])["median"]
    for versions in SETTINGS:
        section.runs += [{"image": image.key, "side": f"IIIF_VERSIONS={versions}", **run} for run in runs[versions]]
        section.rows.append(_row(versions, runs[versions], reference))
    three, both = section.rows
    extra_s = statistics.median(
        b["seconds"] - a["seconds"] for a, b in zip(runs[SETTINGS[0]], runs[SETTINGS[1]], strict=True)
    )
    section.notes += [
        f"2,3 adds {both['objects'] - three['objects']} objects "
        f"({(both['objects'] / three['objects'] - 1) * 100:.0f}% more) and "
        f"{both['stored_mb'] - three['stored_mb']:.1f} MB stored "
        f"({(both['stored_mb'] / three['stored_mb'] - 1) * 100:.0f}% more): every 2.1 tile and size is the 3.0 "
        "one's bytes under a second key, plus the 2.1 info.json; nothing is encoded twice",
        f"extra upload->done time: {extra_s:+.2f} s (median of the paired rounds' differences), "
        f"{both['ratio']:.2f}x the IIIF_VERSIONS=3 time",
        "objects, stored MB and S3 PUTs come from the job record (objects, cost.s3.bytes_stored, "
        "cost.s3.write_requests: what the cost figures price); upload->done and publish s as in the s3 section",
        f"UPLOAD_WORKERS={s3_flow.PARALLEL_WORKERS}, TILE_SIZE={s3_flow.TILE_SIZE}, SERVING_TIFF=false, "
        "IIIF_MANIFESTS on (Presentation 3 only); each run a child process of its own after a warm-up",
    ]
    return section


def _one_run(ctx: Context, image: Any, endpoint: str, versions: str, index: int) -> dict[str, Any]:
    work = ctx.work_dir / "iiif2" / f"v{versions.replace(',', '')}-{index + 1}"
    env = {**s3_flow._env(work, endpoint, s3_flow.PARALLEL_WORKERS), "IIIF_VERSIONS": versions}
    args = ["flow", "--kind", "standin", "--image", str(image.path), "--work", str(work)]
    run = s3_flow._child(ctx, args, env, work)["runs"][0]
    ctx.log(
        f"  {image.key:>6} IIIF_VERSIONS={versions:<3} run {index + 1}: {run['seconds']:6.2f} s  "
        f"{run['objects']} objects, {run['record_cost_s3']['bytes_stored'] / 2**20:.1f} MB, "
        f"publish {run['publish_s']:.2f} s"
    )
    return run


def _row(versions: str, runs: list[dict[str, Any]], reference: float) -> dict[str, Any]:
    seconds = summary([run["seconds"] for run in runs])
    return {
        "versions": versions,
        "runs": len(runs),
        "objects": runs[0]["objects"],
        "stored_mb": runs[0]["record_cost_s3"]["bytes_stored"] / 2**20,
        "puts": runs[0]["record_cost_s3"]["write_requests"],
        "median_s": seconds["median"],
        "spread": f"{seconds['min']:.2f}-{seconds['max']:.2f}",
        "publish_s": statistics.median(run["publish_s"] for run in runs),
        "ratio": seconds["median"] / reference,
        "seconds": seconds,
    }
