"""Command line: ``python -m app convert | settings``.

Every subcommand is a thin adapter over the same code the Lambda handler runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.errors import InputError, TilerError
from app.ids import image_id_for, is_valid_id
from config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as error:
        parser.error(str(error))
    return args.run(args, settings, parser)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Deep Zoom + IIIF tiles and metadata from images.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    convert = commands.add_parser("convert", help="convert local images into tile and metadata folders")
    convert.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    convert.add_argument("--tiles-dir", type=Path, required=True, help="where ID.dzi, ID_files/ and ID/ (IIIF) go")
    convert.add_argument("--metadata-dir", type=Path, required=True, help="where ID.json (metadata) goes")
    convert.add_argument("--id", dest="image_id", help="image id (one image only; default: from the file name)")
    convert.add_argument("--base-url", help="public URL of the tiles folder, for info.json ids (default: PUBLIC_BASE_URL)")
    convert.set_defaults(run=_convert)

    demo = commands.add_parser("demo", help="run the whole flow locally: embedded S3, events, conversion")
    demo.add_argument("--port", type=int, default=0, help="port of the embedded S3 endpoint (default: any free one)")
    demo.add_argument("--dashboard-port", type=int, default=8000, help="port of the dashboard (default 8000)")
    demo.add_argument("--exit", action="store_true", help="exit once the sample images are done")
    demo.set_defaults(run=_demo)

    show = commands.add_parser("settings", help="print every setting, its variable and current value")
    show.add_argument("--markdown", action="store_true", help="print the README's table of variables and defaults")
    show.set_defaults(run=_settings)
    return parser


def _convert(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    from app.cli_progress import ConversionProgress
    from app.pipeline import convert
    from app.storage.local import LocalStorage

    if args.image_id and len(args.images) > 1:
        parser.error("--id names one image; give one IMAGE with it")
    if args.image_id and not is_valid_id(args.image_id):
        parser.error(f"--id {args.image_id!r}: use letters, digits, '.', '_', '-' and '/' between parts")
    if args.base_url:
        settings = settings.with_overrides(public_base_url=args.base_url)
    storage = LocalStorage(args.tiles_dir, args.metadata_dir)
    failures = 0
    with ConversionProgress(len(args.images)) as progress:
        for src in args.images:
            image_id = args.image_id or image_id_for(src.name)
            progress.start(src.name)
            started = time.perf_counter()
            try:
                with storage.staging() as stage:
                    conversion = convert(src, stage, settings, image_id, on_progress=progress.update)
                    storage.publish(conversion)
            except TilerError as error:
                failures += 1
                kind = "rejected" if isinstance(error, InputError) else "failed"
                progress.write(f"error: {src}: {kind}: {error}", err=True)
                continue
            facts = conversion.facts
            progress.write(f"{src} -> {image_id}: {facts.width}x{facts.height} {facts.format}, "
                           f"{len(conversion.tiles)} tiles in {time.perf_counter() - started:.2f}s"
                           + (f" (metadata partial: {conversion.metadata_partial})" if conversion.metadata_partial else ""))
    done = len(args.images) - failures
    print(f"{done} of {len(args.images)} converted. Tiles: {args.tiles_dir}/  Metadata: {args.metadata_dir}/")
    if done:
        print(f"View: python -m http.server --directory {args.tiles_dir} 8000, then open "
              f"{settings.public_base_url.rstrip('/')}/ID/info.json in any IIIF viewer, or ID.dzi in OpenSeadragon.")
    return 1 if failures else 0


def _demo(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    from app import demo
    return demo.run(port=args.port, dashboard_port=args.dashboard_port, keep_running=not args.exit)


def _settings(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    from dataclasses import fields
    if args.markdown:
        print(settings_table())
        return 0
    for f in fields(Settings):
        value = getattr(settings, f.name)
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        print(f"{f.metadata['env']}={shown}\n    {f.metadata['doc']}")
    return 0


def settings_table() -> str:
    """The README's table of environment variables, generated so it cannot drift from config.py."""
    rows = ["| Variable | Default | What it does |", "|---|---|---|"]
    rows += [f"| `{env}` | `{default}` | {doc} |" if default else f"| `{env}` | (empty) | {doc} |"
             for env, default, doc in Settings.documentation()]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
