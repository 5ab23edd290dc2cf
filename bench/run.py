"""Benchmark: ``make bench``, i.e.
``.venv/bin/python bench/run.py [--runs N]
[--only 48mp|430mp|tiling|batch|s3|iiif2|iiif|iiif-peer|archive|collections] [--keep] [--json PATH] [--no-markdown]``.

Answers these questions with numbers: how much slower than bare libvips dzsave
is our conversion to Deep Zoom, IIIF and metadata (target: at most 1.3x; and
with the per-image manifest), does a 430 MP image convert in
under 512 MB of memory (i.e. does it really stream), how long from an
upload to S3 until the image is published (target: within 2x of the
conversion alone with 25 ms per S3 request; and what a IIIF Image API 2.1
service beside 3.0 adds in objects, bytes and upload time), and how fast does the dynamic
IIIF endpoint answer random tile requests, next to the static tiles? And for
archive masters: how close is a 100 MP JPEG 2000 to OpenJPEG's own decoder
plus dzsave (target: at most 1.3x), in how much memory, and how many pages
of a scanned PDF per second? And next to what a user would pick instead:
fifty ordinary pages in one call against a loop of plain dzsave, and the
dynamic endpoint against iiif-processor (serverless-iiif) on the same TIFF
and S3. And for collections: does a 10,000-image collection start in under
60 s, with at most 2 S3 requests per image to start and 5 to complete,
growing linearly?

Inputs are synthetic photo-like JPEGs generated once into ``bench/data/``
(git-ignored). Every measurement is a function in ``MEASUREMENTS`` returning
a ``results.Section``; this file only prepares inputs, runs them, prints and
saves, and writes each section's figures into BENCHMARKS.md between its
markers, with the date, the machine and the command (``--no-markdown`` only
prints). It is a benchmark, not a test: a missed target still exits 0; a
crashed run exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # helper modules live next to this file; bench/ is not a package

import archive  # noqa: E402
import batch  # noqa: E402
import collection_scale  # noqa: E402
import iiif_load  # noqa: E402
import iiif_peer  # noqa: E402
import iiif_versions  # noqa: E402
import s3_flow  # noqa: E402
import synth  # noqa: E402
import tiling  # noqa: E402
from proc import RunFailed, run_measured  # noqa: E402
from results import BenchImage, Context, Section, discard_dir, format_table, set_aside, update_markdown  # noqa: E402

REPO = HERE.parent
DATA = HERE / "data"
IMAGES = {  # key: (width, height, peak-RSS target in MB or None)
    "48mp": (8000, 6000, None),
    "430mp": (24000, 18000, 512),
}
MEASUREMENTS: list[Callable[[Context], Section]] = [
    tiling.measure,
    batch.measure,
    s3_flow.measure,
    iiif_versions.measure,
    iiif_load.measure,
    iiif_peer.measure,
    archive.measure,
    collection_scale.measure,
]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.serial_runs is not None and args.serial_runs < 1:
        parser.error("--serial-runs must be at least 1")
    if args.s3_latency_ms < 0:
        parser.error("--s3-latency-ms cannot be negative")
    if args.iiif_requests < 1 or args.iiif_clients < 1 or args.iiif_peer_requests < 1:
        parser.error("--iiif-requests, --iiif-peer-requests and --iiif-clients must be at least 1")
    unknown = set(args.iiif_peer_images) - set(iiif_peer.SIZES)
    if unknown or not args.iiif_peer_images:
        parser.error(f"--iiif-peer-images: a comma-separated list of {', '.join(iiif_peer.SIZES)}")
    started = time.perf_counter()
    report: dict[str, Any] = {"environment": environment(), "options": _options(args)}
    _print_environment(report["environment"])
    _byte_compile_project()
    try:
        measurements = selected_measurements(args.only)
        images, report["generation"] = prepare_images(args.only, measurements)
        ctx = Context(
            repo=REPO,
            python=sys.executable,
            work_dir=args.scratch / "bench-runs",
            images=images,
            runs=args.runs,
            keep=args.keep,
            log=_log,
            options={
                "s3_latency_ms": args.s3_latency_ms,
                "serial_runs": args.serial_runs,
                "iiif_requests": args.iiif_requests,
                "iiif_clients": args.iiif_clients,
                "iiif_peer_images": args.iiif_peer_images,
                "iiif_peer_requests": args.iiif_peer_requests,
            },
        )
        _clear_runs(ctx)
        sections = run_measurements(ctx, measurements)
    except RunFailed as error:
        print(f"\nbenchmark aborted: a run failed: {error}", file=sys.stderr)
        report["error"] = str(error)
        _save_json(args.json, report)
        return 1
    report["measurements"] = [section.to_json() for section in sections]
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    for section in sections:
        print_section(section)
    if args.markdown is not None:
        written = update_markdown(args.markdown, sections, provenance(report["environment"], argv))
        print(f"\nFigures of {', '.join(written)} written to {args.markdown}")
    print(
        f"\nWhole benchmark: {report['total_seconds']:.0f} s"
        + (f"; kept outputs in {ctx.work_dir}" if args.keep else "")
    )
    _save_json(args.json, report)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[1])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side and image (default 3)")
    parser.add_argument(
        "--only",
        choices=sorted(IMAGES) + sorted(map(section_name, MEASUREMENTS)),
        help="benchmark one image only, or run one section only (tiling: both images; "
        "batch: 50 pages of 2500x2000 in one convert call, made on first use; "
        "s3: upload to done through S3, 48mp; iiif: dynamic vs static tile requests, 430mp; "
        "iiif-peer: dynamic endpoint vs iiif-processor, 100 and 430 MP; "
        "archive: 100 MP JPEG 2000 and a 50-page PDF, made on first use; "
        "collections: start and complete 2,500 and 10,000 images on the S3 stand-in)",
    )
    parser.add_argument("--keep", action="store_true", help="keep every run's output (in SCRATCH/bench-runs)")
    parser.add_argument(
        "--scratch",
        type=Path,
        default=DATA,
        metavar="DIR",
        help="file system for the outputs: they go in DIR/bench-runs, emptied first "
        "(default bench/data; try a tmpfs to take disk metadata speed out of the numbers)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=REPO / "BENCHMARKS.md",
        metavar="PATH",
        help="where each section's figures are written, between its markers (default BENCHMARKS.md)",
    )
    parser.add_argument(
        "--no-markdown", dest="markdown", action="store_const", const=None, help="print only; write no Markdown"
    )
    parser.add_argument(
        "--s3-latency-ms",
        type=float,
        default=25.0,
        metavar="MS",
        help="s3: latency of the fast S3 stand-in, per request (default 25)",
    )
    parser.add_argument(
        "--serial-runs",
        type=int,
        metavar="N",
        help="s3: runs with UPLOAD_WORKERS=1, about 15 s each at 25 ms (default 1)",
    )
    parser.add_argument(
        "--iiif-requests",
        type=int,
        default=iiif_load.DEFAULT_REQUESTS,
        metavar="N",
        help=f"iiif: random tile requests per pass (default {iiif_load.DEFAULT_REQUESTS})",
    )
    parser.add_argument(
        "--iiif-clients",
        type=int,
        default=iiif_load.DEFAULT_CLIENTS,
        metavar="N",
        help=f"iiif, iiif-peer: concurrent client threads (default {iiif_load.DEFAULT_CLIENTS})",
    )
    parser.add_argument(
        "--iiif-peer-images",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=list(iiif_peer.DEFAULT_IMAGES),
        metavar="KEYS",
        help="iiif-peer: the images, comma-separated (default 100mp,430mp; the 430 MP one makes the section long: "
        "the peer streams its whole 200 MB TIFF for every request)",
    )
    parser.add_argument(
        "--iiif-peer-requests",
        type=int,
        default=iiif_peer.DEFAULT_REQUESTS,
        metavar="N",
        help=f"iiif-peer: requests per pass (default {iiif_peer.DEFAULT_REQUESTS})",
    )
    return parser


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "runs": args.runs,
        "only": args.only,
        "keep": args.keep,
        "scratch": str(args.scratch.resolve()),
        "s3_latency_ms": args.s3_latency_ms,
        "serial_runs": args.serial_runs,
        "iiif_requests": args.iiif_requests,
        "iiif_clients": args.iiif_clients,
        "iiif_peer_images": args.iiif_peer_images,
        "iiif_peer_requests": args.iiif_peer_requests,
    }


def section_name(measure: Callable[[Context], Section]) -> str:
    """What --only calls a measurement: its module's SECTION, or the module's name."""
    return getattr(sys.modules[measure.__module__], "SECTION", measure.__module__)


def images_for(measure: Callable[[Context], Section]) -> tuple[str, ...]:
    """The images a measurement uses: its module's IMAGE_KEYS, or every image."""
    return tuple(getattr(sys.modules[measure.__module__], "IMAGE_KEYS", IMAGES))


def selected_measurements(only: str | None) -> list[Callable[[Context], Section]]:
    """Every measurement; one section by name; or those that use the one image selected."""
    if only in IMAGES:
        return [measure for measure in MEASUREMENTS if only in images_for(measure)]
    return [measure for measure in MEASUREMENTS if only is None or section_name(measure) == only]


def prepare_images(
    only: str | None, measurements: list[Callable[[Context], Section]]
) -> tuple[tuple[BenchImage, ...], list[dict[str, Any]]]:
    """The selected images, generating any that are not cached yet; generation stats for the record."""
    wanted = {key for measure in measurements for key in images_for(measure)}
    images, generated = [], []
    for key, (width, height, rss_limit) in IMAGES.items():
        if (only in IMAGES and key != only) or key not in wanted:
            continue
        image = BenchImage(key, width, height, DATA / f"photo-{width}x{height}-q{synth.QUALITY}.jpg", rss_limit)
        if not image.path.exists():
            generated.append(_generate(image))
        images.append(image)
    return tuple(images), generated


def _generate(image: BenchImage) -> dict[str, Any]:
    """Generate in a child process, whose peak RSS shows the streaming worked (far below width*height*3)."""
    _log(f"Generating {image.path.name} ({image.megapixels:.0f} MP) ...")
    image.path.parent.mkdir(parents=True, exist_ok=True)
    stats = run_measured(
        [sys.executable, str(HERE / "synth.py"), str(image.path), str(image.width), str(image.height)],
        log_dir=DATA / "logs" / f"generate-{image.key}",
    )
    size_mb = image.path.stat().st_size / 2**20
    _log(f"  done in {stats.seconds:.1f} s, peak RSS {stats.peak_rss_mb:.0f} MB, {size_mb:.0f} MB on disk")
    return {
        "image": image.key,
        "seconds": round(stats.seconds, 1),
        "peak_rss_mb": round(stats.peak_rss_mb, 1),
        "file_mb": round(size_mb, 1),
    }


def _clear_runs(ctx: Context) -> None:
    """Start from an empty scratch folder so a previous --keep cannot fill the disk or confuse anyone; the old one
    is set aside and deleted after the last measurement (``results.set_aside``)."""
    set_aside(ctx, ctx.work_dir)
    ctx.work_dir.mkdir(parents=True)


def run_measurements(ctx: Context, measurements: list[Callable[[Context], Section]] | None = None) -> list[Section]:
    sections = []
    for measure in MEASUREMENTS if measurements is None else measurements:
        keys = images_for(measure)
        scoped = dataclasses.replace(ctx, images=tuple(i for i in ctx.images if i.key in keys))
        _log(f"\n{measure.__module__}: {ctx.runs} run(s) per side, images {', '.join(i.key for i in scoped.images)}")
        sections.append(measure(scoped))
    if not ctx.keep:
        set_aside(ctx, ctx.work_dir)
    shutil.rmtree(discard_dir(ctx.work_dir), ignore_errors=True)  # after the last measurement: see set_aside
    return sections


def print_section(section: Section) -> None:
    print(f"\n== {section.title} ==\n")
    print(format_table(section.columns, section.rows))
    if section.runs:
        print("\nIndividual runs (seconds, in run order):")
        for key in dict.fromkeys((run["image"], run["side"]) for run in section.runs):
            times = [run["seconds"] for run in section.runs if (run["image"], run["side"]) == key]
            print(f"  {key[0]:>6} {key[1]:<9} " + "  ".join(f"{t:7.2f}" for t in times))
    if section.targets:
        print("\nTargets:")
        for target in section.targets:
            print(f"  {target.describe()}")
    for note in section.notes:
        print(f"  note: {note}")


def environment() -> dict[str, Any]:
    """What the numbers depend on, so two JSON files can be compared honestly."""
    import pyvips

    return {
        "python": platform.python_version(),
        "pyvips": pyvips.__version__,
        "libvips": ".".join(str(pyvips.version(i)) for i in range(3)),
        "vips_cli": _first_line(["vips", "--version"]),  # informational only; the reference does not use it
        "exiftool": _first_line(["exiftool", "-ver"]),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],  # a shared machine's other work, at the start
        "cpu_model": _cpu_model(),
        "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9,
        "platform": platform.platform(),
        "git": _git_version(),
    }


def provenance(env: dict[str, Any], argv: list[str] | None) -> str:
    """The line that says when, where and how a section's figures were measured."""
    command = shlex.join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f"Measured {when} by `{command}` (`make bench` runs `bench/run.py`) on {env['cpus']} CPUs "
        f"({env['cpu_model'] or 'unknown CPU'}), {env['memory_gb']:.0f} GB, load average {env['load_average']:.1f} at "
        f"the start, {env['platform']}; libvips "
        f"{env['libvips']}, Python {env['python']}, exiftool {env['exiftool'] or 'missing'}, git {env['git']}."
    )


def _byte_compile_project() -> None:
    """Compile the project's modules once before any run, as Python does on a user's first run. Where
    PYTHONDONTWRITEBYTECODE is set (as on the build machine) every candidate process would otherwise compile them
    again, a cost no user pays twice and the reference (pyvips, compiled when pip installed it) never pays."""
    import compileall

    for path in (REPO / "app", REPO / "config.py"):
        compiled = compileall.compile_dir(path, quiet=1) if path.is_dir() else compileall.compile_file(path, quiet=1)
        if not compiled:
            raise SystemExit(f"cannot byte-compile {path}")


def _print_environment(env: dict[str, Any]) -> None:
    print(
        f"libvips {env['libvips']} (pyvips {env['pyvips']}), Python {env['python']}, {env['cpus']} CPUs, "
        f"exiftool {env['exiftool'] or 'missing'}, git {env['git']}"
    )
    if env["vips_cli"]:
        print(f"vips on PATH: {env['vips_cli']} (not used; the reference runs the project's libvips via pyvips)")


def _git_version() -> str | None:
    """The commit, "-dirty" if a tracked file other than BENCHMARKS.md (which the runs write) differs from it."""
    commit = _first_line(["git", "-C", str(REPO), "describe", "--always"])
    changed = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{commit}-dirty" if commit and changed else commit


def _cpu_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)


def _first_line(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def _save_json(path: Path | None, report: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"JSON written to {path}")


def _log(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
