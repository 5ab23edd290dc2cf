"""Measurement: archive masters. JPEG 2000 against OpenJPEG's own decoder plus dzsave; a scanned PDF's pages/s.

JPEG 2000: a photo-like 100 MP image, lossless and lossy (PSNR 40 dB),
encoded once with the encoder of the package the pipeline decodes with
(imagecodecs' OpenJPEG, which writes single-tile codestreams). The candidate is ``python -m app convert`` (Deep
Zoom, IIIF level 0, metadata; no manifest, no serving TIFF, as in the tiling
section). The reference is the least work that gets a Deep Zoom pyramid out
of a JPEG 2000 file: OpenJPEG's ``opj_decompress`` to an uncompressed TIFF
(on all cores, as the pipeline decodes), then plain libvips dzsave of it;
its time and peak RSS are the two processes' sum and maximum. Runs alternate
and reverse, medians are reported. Target: at most 1.3x.

PDF: 50 letter pages, each a 300 dpi scan (an 8.4 MP JPEG placed on the
page, as scanners write PDFs), converted by the CLI into an item of 50
images and its manifest at PDF_DPI=300: pages per second and peak RSS.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from proc import ProcessStats, run_measured
from results import Column, Context, Section, Target, summary

SECTION = "archive"
IMAGE_KEYS: tuple[str, ...] = ()  # makes its own inputs
WIDTH, HEIGHT = 12000, 8400  # 100.8 MP
MASTERS = {"jp2-lossless": {"reversible": True}, "jp2-lossy": {"level": 40, "reversible": False}}  # level: PSNR
PDF_PAGES, PAGE_POINTS, SCAN = 50, (612, 792), (2550, 3300)
TILE_SIZE, QUALITY, MAX_RATIO = 512, 85, 1.3
DZSAVE = (
    f"import pyvips,sys; pyvips.Image.new_from_file(sys.argv[1], access='sequential')"
    f".dzsave(sys.argv[2], tile_size={TILE_SIZE}, overlap=0, suffix='.jpg[Q={QUALITY}]')"
)
COLUMNS = [
    Column("input", "input"),
    Column("megapixels", "MP", "{:.0f}"),
    Column("file_mb", "file MB", "{:.0f}"),
    Column("reference_median_s", "ref median s", "{:.2f}"),
    Column("candidate_median_s", "cand median s", "{:.2f}"),
    Column("ratio", "ratio", "{:.2f}"),
    Column("candidate_peak_rss_mb", "cand peak RSS MB", "{:.0f}"),
    Column("mb_per_megapixel", "cand MB/MP", "{:.1f}"),
    Column("reference_peak_rss_mb", "ref peak RSS MB", "{:.0f}"),
    Column("pages_per_second", "pages/s", "{:.2f}"),
    Column("target", f"ratio<={MAX_RATIO}"),
]


def measure(ctx: Context) -> Section:
    section = Section(SECTION, "Archive masters: JPEG 2000 vs opj_decompress + dzsave; a scanned PDF", list(COLUMNS))
    data = ctx.work_dir.parent / "archive"
    for name, options in MASTERS.items():
        master = _generate(ctx, data / f"photo-{WIDTH}x{HEIGHT}-{name}.jp2", "jp2", options)
        runs: dict[str, list[dict[str, Any]]] = {"reference": [], "candidate": []}
        for index in range(ctx.runs):
            for side in ("reference", "candidate") if index % 2 == 0 else ("candidate", "reference"):
                runs[side].append(_jp2_run(ctx, master, name, side, index))
        section.runs += runs["reference"] + runs["candidate"]
        row = _jp2_row(name, master, runs)
        section.rows.append(row)
        section.targets.append(Target("time ratio candidate/reference", name, row["ratio"], "<=", MAX_RATIO))
    section.rows.append(_pdf_row(ctx, _generate(ctx, data / f"scan-{PDF_PAGES}-pages.pdf", "pdf", {})))
    shutil.rmtree(ctx.work_dir / SECTION, ignore_errors=True)
    section.notes += [
        f'reference: opj_decompress -threads ALL_CPUS -i IN -o OUT.tif, then {ctx.python} -c "{DZSAVE}" OUT.tif DZ',
        "candidate: python -m app convert IN (SERVING_TIFF=false, IIIF_MANIFESTS=false, as in the tiling section)",
        "cand MB/MP: the candidate's peak RSS per megapixel (what LAMBDA_MAX_JP2_PIXELS is derived from)",
        f"PDF: {PDF_PAGES} pages, each a {SCAN[0]}x{SCAN[1]} JPEG scan; python -m app convert at PDF_DPI=300, "
        "IIIF_MANIFESTS=false (the item manifest is always written), SERVING_TIFF=false; pages in one process",
    ]
    return section


def _generate(ctx: Context, path: Path, kind: str, options: dict[str, Any]) -> Path:
    """Make an input once, in a child process (so its memory is not the runner's), cached under bench/data."""
    if path.exists():
        return path
    ctx.log(f"Generating {path.name} ...")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    stats = run_measured(
        [ctx.python, __file__, kind, str(partial), repr(options)], log_dir=path.parent / "logs", cwd=ctx.repo
    )
    partial.replace(path)
    ctx.log(f"  done in {stats.seconds:.0f} s, {path.stat().st_size / 2**20:.0f} MB")
    return path


def _jp2_run(ctx: Context, master: Path, name: str, side: str, index: int) -> dict[str, Any]:
    out = ctx.work_dir / SECTION / f"{name}-{side}-{index + 1}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {
        **os.environ,
        "TILE_SIZE": str(TILE_SIZE),
        "JPEG_QUALITY": str(QUALITY),
        "SERVING_TIFF": "false",
        "IIIF_MANIFESTS": "false",
    }
    if side == "reference":
        steps = [
            run_measured(
                ["opj_decompress", "-quiet", "-threads", "ALL_CPUS", "-i", str(master), "-o", str(out / "decoded.tif")],
                log_dir=out / "logs-decode",
            ),
            run_measured(
                [ctx.python, "-c", DZSAVE, str(out / "decoded.tif"), str(out / "dz")], log_dir=out / "logs-dzsave"
            ),
        ]
    else:
        steps = [
            run_measured(
                [
                    ctx.python,
                    "-m",
                    "app",
                    "convert",
                    str(master),
                    "--tiles-dir",
                    str(out / "tiles"),
                    "--metadata-dir",
                    str(out / "metadata"),
                ],
                log_dir=out / "logs",
                cwd=ctx.repo,
                env=env,
            )
        ]
    record = {
        "image": name,
        "side": side,
        "run": index + 1,
        "seconds": round(sum(s.seconds for s in steps), 3),
        "peak_rss_mb": round(max(s.peak_rss_mb for s in steps), 1),
    }
    ctx.log(
        f"  {name:>12} {side:<9} run {index + 1}: {record['seconds']:7.2f} s  peak RSS {record['peak_rss_mb']:6.0f} MB"
    )
    return record


def _jp2_row(name: str, master: Path, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    seconds = {side: summary([r["seconds"] for r in runs[side]]) for side in runs}
    rss = max(r["peak_rss_mb"] for r in runs["candidate"])
    ratio = seconds["candidate"]["median"] / seconds["reference"]["median"]
    return {
        "input": name,
        "megapixels": WIDTH * HEIGHT / 1e6,
        "file_mb": master.stat().st_size / 2**20,
        "reference_median_s": seconds["reference"]["median"],
        "candidate_median_s": seconds["candidate"]["median"],
        "ratio": ratio,
        "candidate_peak_rss_mb": rss,
        "mb_per_megapixel": rss / (WIDTH * HEIGHT / 1e6),
        "reference_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["reference"]),
        "target": "PASS" if ratio <= MAX_RATIO else "MISS",
        "reference_seconds": seconds["reference"],
        "candidate_seconds": seconds["candidate"],
    }


def _pdf_row(ctx: Context, document: Path) -> dict[str, Any]:
    out = ctx.work_dir / SECTION / "pdf"
    env = {**os.environ, "PDF_DPI": "300", "SERVING_TIFF": "false", "IIIF_MANIFESTS": "false"}
    stats: list[ProcessStats] = []
    for index in range(ctx.runs):
        shutil.rmtree(out, ignore_errors=True)
        stats.append(
            run_measured(
                [
                    ctx.python,
                    "-m",
                    "app",
                    "convert",
                    str(document),
                    "--tiles-dir",
                    str(out / "tiles"),
                    "--metadata-dir",
                    str(out / "metadata"),
                ],
                log_dir=out.parent / "pdf-logs",
                cwd=ctx.repo,
                env=env,
            )
        )
        ctx.log(
            f"  {'pdf':>12} candidate run {index + 1}: {stats[-1].seconds:7.2f} s  "
            f"peak RSS {stats[-1].peak_rss_mb:6.0f} MB"
        )
    median = summary([s.seconds for s in stats])["median"]
    return {
        "input": f"pdf, {PDF_PAGES} pages",
        "megapixels": PDF_PAGES * 2550 * 3300 / 1e6,
        "file_mb": document.stat().st_size / 2**20,
        "candidate_median_s": median,
        "candidate_peak_rss_mb": max(s.peak_rss_mb for s in stats),
        "pages_per_second": PDF_PAGES / median,
    }


def _make(kind: str, path: Path, options: dict[str, Any]) -> None:
    """The child process: a photo-like master with imagecodecs' OpenJPEG, or a PDF of JPEG scans with PDFium."""
    import synth

    if kind == "jp2":
        import imagecodecs

        pixels = synth.photo_like(WIDTH, HEIGHT).numpy()
        path.write_bytes(imagecodecs.jpeg2k_encode(pixels, numthreads=os.cpu_count(), **options))
        return
    import pypdfium2

    scan = path.with_suffix(".jpg")
    synth.photo_like(*SCAN).jpegsave(str(scan), Q=QUALITY)
    document = pypdfium2.PdfDocument.new()
    for _ in range(PDF_PAGES):
        page = document.new_page(*PAGE_POINTS)
        image = pypdfium2.PdfImage.new(document)
        image.load_jpeg(str(scan))
        image.set_matrix(pypdfium2.PdfMatrix().scale(*PAGE_POINTS))
        page.insert_obj(image)
        page.gen_content()
    document.save(str(path))
    scan.unlink()


if __name__ == "__main__":
    import ast

    _make(sys.argv[1], Path(sys.argv[2]), ast.literal_eval(sys.argv[3]))
