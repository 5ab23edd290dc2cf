"""Command line: ``python -m app convert | demo | settings | provision | doctor | redrive | teardown | reprocess``.

Every subcommand is a thin adapter over the same code the Lambda handler runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.errors import TilerError
from app.ids import is_valid_id
from config import Settings

SECRET_SETTINGS = {"dashboard_password", "dashboard_password_hash", "secret_key"}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as error:
        parser.error(str(error))
    return args.run(args, settings, parser)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app", description="Deep Zoom + IIIF tiles and metadata from images."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    convert = commands.add_parser("convert", help="convert local images into tile and metadata folders")
    convert.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    convert.add_argument("--tiles-dir", type=Path, required=True, help="where ID.dzi, ID_files/ and ID/ (IIIF) go")
    convert.add_argument("--metadata-dir", type=Path, required=True, help="where ID.json (metadata) goes")
    convert.add_argument("--id", dest="image_id", help="image id (one image only; default: from the file name)")
    convert.add_argument(
        "--base-url", help="public URL of the tiles folder, for info.json ids (default: PUBLIC_BASE_URL)"
    )
    convert.set_defaults(run=_convert)

    demo = commands.add_parser("demo", help="run the whole flow locally: embedded S3, events, conversion")
    demo.add_argument("--port", type=int, default=0, help="port of the embedded S3 endpoint (default: any free one)")
    demo.add_argument("--dashboard-port", type=int, default=8000, help="port of the dashboard (default 8000)")
    demo.add_argument("--exit", action="store_true", help="exit once the sample images are done")
    demo.set_defaults(run=_demo)

    provision = commands.add_parser("provision", help="create or update a stage's buckets, Batch, ECR and IAM roles")
    _stage_arguments(provision)
    provision.add_argument("--source-bucket", help="bucket name (default: <project>-<stage>-source-<account>)")
    provision.add_argument("--tiles-bucket", help="bucket name (default: <project>-<stage>-tiles-<account>)")
    provision.add_argument("--metadata-bucket", help="bucket name (default: <project>-<stage>-metadata-<account>)")
    provision.add_argument(
        "--public-base-url",
        help="with --public-bucket: public URL of the tiles, e.g. a CDN of your own (default: the bucket's)",
    )
    served = provision.add_mutually_exclusive_group()
    served.add_argument(
        "--public-bucket",
        dest="public_bucket",
        action="store_true",
        default=None,
        help="serve the tiles from a public bucket instead of CloudFront (refused when the account "
        "blocks public bucket policies)",
    )
    served.add_argument(
        "--cloudfront",
        dest="public_bucket",
        action="store_false",
        help="serve the tiles through CloudFront from a private bucket (the default for a new stage)",
    )
    provision.add_argument("--domain", help="a custom domain for the CloudFront distribution, e.g. tiles.example.org")
    provision.add_argument("--certificate-arn", help="with --domain: an ACM certificate in us-east-1 covering it")
    provision.add_argument("--max-vcpus", type=int, default=16, help="Batch capacity ceiling (default 16)")
    provision.add_argument("--subnets", help="comma-separated subnets for Batch (default: the default VPC's)")
    provision.add_argument("--security-groups", help="comma-separated security groups, with --subnets")
    provision.add_argument(
        "--image",
        help="the pushed image Batch runs, REPO:git-COMMIT or REPO@sha256:... "
        "(scripts/push_batch_image.sh passes it; default: the job definition's current image)",
    )
    provision.add_argument("--alarm-topic", help="an SNS topic ARN the stage's alarms notify")
    provision.add_argument(
        "--alarm-email", help="or an e-mail address: a topic of the stage's own is made and the address subscribed"
    )
    provision.set_defaults(run=_provision)

    doctor = commands.add_parser("doctor", help="check a deployed stage: one line per check, with the fix")
    _stage_arguments(doctor)
    doctor.add_argument(
        "--dashboard-url",
        help="the dashboard's base URL, e.g. a custom domain in front of the API "
        "(default: the stage's URL in API Gateway)",
    )
    doctor.set_defaults(run=_doctor)

    redrive = commands.add_parser(
        "redrive", help="list a stage's dead letters (events that failed every delivery) and send them back"
    )
    _stage_arguments(redrive)
    redrive.add_argument("--list", action="store_true", help="only list them")
    redrive.add_argument("--message-id", action="append", help="only this dead letter (repeatable)")
    redrive.set_defaults(run=_redrive)

    teardown = commands.add_parser("teardown", help="remove what provisioning created for a stage")
    _stage_arguments(teardown)
    teardown.add_argument("--force", action="store_true", help="also delete buckets and images that are not empty")
    teardown.set_defaults(run=_teardown)

    reprocess = commands.add_parser(
        "reprocess",
        help="convert a stage's images again through the normal path (after a settings change, a new libvips)",
    )
    _stage_arguments(reprocess)
    reprocess.add_argument("--prefix", default="", help="only source keys starting with this (default: all)")
    reprocess.add_argument(
        "--status", choices=("done", "failed", "gone", "retrying"), help="only images whose record says this"
    )
    reprocess.add_argument(
        "--dry-run", action="store_true", help="print what would be sent and the estimate; send nothing"
    )
    reprocess.add_argument("--resume", metavar="RUN", help="continue a stopped run where it stopped")
    reprocess.add_argument("--yes", action="store_true", help="start without asking (needed without a terminal)")
    reprocess.add_argument(
        "--max-in-flight",
        type=int,
        default=20,
        metavar="N",
        help="most images of this run converting at a time (default 20, or the stage's MAXIMUM_CONCURRENCY if lower)",
    )
    reprocess.set_defaults(run=_reprocess)

    hashing = commands.add_parser(
        "hash-password", help="print DASHBOARD_PASSWORD_HASH for a password read from the terminal or stdin"
    )
    hashing.set_defaults(run=_hash_password)

    show = commands.add_parser("settings", help="print every setting, its variable and current value")
    show.add_argument("--markdown", action="store_true", help="print the README's table of variables and defaults")
    show.set_defaults(run=_settings)
    return parser


def _hash_password(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    """A slow salted hash (scrypt) for DASHBOARD_PASSWORD_HASH, so the stage's settings never hold the password."""
    import getpass

    from werkzeug.security import generate_password_hash

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            parser.error("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        parser.error("use at least 12 characters")
    print(generate_password_hash(password, method="scrypt"))
    return 0


def _convert(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    from app.cli_convert import convert_files
    from app.cli_progress import ConversionProgress
    from app.storage.local import LocalStorage

    if args.image_id and len(args.images) > 1:
        parser.error("--id names one image; give one IMAGE with it")
    if args.image_id and not is_valid_id(args.image_id):
        parser.error(f"--id {args.image_id!r}: use letters, digits, '.', '_', '-' and '/' between parts")
    if args.base_url:
        settings = settings.with_overrides(public_base_url=args.base_url)
    storage = LocalStorage(args.tiles_dir, args.metadata_dir)
    with ConversionProgress(len(args.images)) as progress:
        failures = convert_files(args.images, storage, settings, args.image_id, progress)
    done = len(args.images) - failures
    print(f"{done} of {len(args.images)} converted. Tiles: {args.tiles_dir}/  Metadata: {args.metadata_dir}/")
    if done:
        from app.iiif.paths import service_path

        base = settings.public_base_url.rstrip("/")
        infos = " or ".join(
            f"{base}/{service_path(version, 'ID')}/info.json"
            for version in sorted(settings.iiif_versions, reverse=True)
        )
        print(
            f"View: python -m http.server --directory {args.tiles_dir} 8000, then open "
            f"{infos} in any IIIF viewer, or ID.dzi in OpenSeadragon."
        )
    return 1 if failures else 0


def _demo(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    from tooling import demo

    return demo.run(port=args.port, dashboard_port=args.dashboard_port, keep_running=not args.exit)


def _settings(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    from dataclasses import fields

    if args.markdown:
        print(settings_table())
        return 0
    for f in fields(Settings):
        value = getattr(settings, f.name)
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        if f.name in SECRET_SETTINGS and value:
            shown = "(set, not shown)"  # terminals are scrolled back, logged and shared
        print(f"{f.metadata['env']}={shown}\n    {f.metadata['doc']}")
    return 0


def _stage_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("stage", help="a stage of zappa_settings.json, e.g. dev")
    command.add_argument(
        "--settings-file",
        type=Path,
        default=Path("zappa_settings.json"),
        help="Zappa's settings file (default: ./zappa_settings.json)",
    )


def _provision(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    from tooling.deploy.batch import Network
    from tooling.deploy.provision import Options, provision

    if bool(args.subnets) != bool(args.security_groups):
        parser.error("--subnets and --security-groups go together")
    network = Network(tuple(args.subnets.split(",")), tuple(args.security_groups.split(","))) if args.subnets else None
    options = Options(
        source_bucket=args.source_bucket,
        tiles_bucket=args.tiles_bucket,
        metadata_bucket=args.metadata_bucket,
        public_base_url=args.public_base_url,
        max_vcpus=args.max_vcpus,
        network=network,
        image=args.image,
        public_bucket=args.public_bucket,
        domain=args.domain,
        certificate_arn=args.certificate_arn,
        alarm_topic=args.alarm_topic,
        alarm_email=args.alarm_email,
    )

    def run(stage) -> int:
        provision(stage, options)
        return 0

    return _on_stage(args, run)


def _doctor(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    from tooling.deploy.doctor import doctor

    return _on_stage(
        args,
        lambda stage: 0 if all(check.passed for check in doctor(stage, dashboard_url=args.dashboard_url or "")) else 1,
    )


def _redrive(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    import os

    from app import deadletters

    def run(stage) -> int:
        os.environ["AWS_DEFAULT_REGION"] = stage.region  # the stage's queues, whatever the shell's default region
        staged = Settings.from_env(stage.environment)
        if not staged.dead_letter_queue:
            print(f"error: stage {stage.name} has no DEAD_LETTER_QUEUE: python -m app provision {stage.name}")
            return 1
        listed, total = deadletters.listing(staged, limit=1000)
        for item in listed:
            letter = item.letter
            print(
                f"{letter.message_id}  {', '.join(letter.keys)}  first failed {letter.first_failure}, "
                f"{letter.attempts} attempts, {letter.redrives} re-drives"
                + (f"  [{item.status}: {item.error}]" if item.status else "  [no job record]")
            )
        print(f"{total} dead letter(s) in {staged.dead_letter_queue}")
        if args.list or not total:
            return 0
        sent = deadletters.redrive(staged, set(args.message_id) if args.message_id else None)
        print(f"re-drove {len(sent)} to {staged.event_queue}")
        return 0

    return _on_stage(args, run)


def _teardown(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    from tooling.deploy.teardown import teardown

    return _on_stage(args, lambda stage: 1 if any(c.action == "kept" for c in teardown(stage, args.force)) else 0)


def _reprocess(args: argparse.Namespace, settings: Settings, parser: argparse.ArgumentParser) -> int:
    if args.resume and (args.prefix or args.status):
        parser.error("--resume continues a run with the --prefix and --status it was started with")
    if args.max_in_flight < 1:
        parser.error("--max-in-flight must be at least 1")

    def run(stage) -> int:
        from app import reprocess
        from app.storage.s3 import S3Storage

        staged = Settings.from_env(stage.environment)  # the deployed function's settings: buckets, prices
        ceiling = int(stage.environment.get("MAXIMUM_CONCURRENCY") or 0) or args.max_in_flight
        queue = stage.environment.get("EVENT_QUEUE", "")
        try:
            return reprocess.command(
                S3Storage(staged.upload_workers),
                staged,
                stage.name,
                lambda: reprocess.delivery(stage.region, stage.function_name, queue),
                prefix=args.prefix,
                status=args.status,
                dry_run=args.dry_run,
                resume=args.resume,
                yes=args.yes,
                at_once=min(args.max_in_flight, ceiling),
            )
        except TilerError as error:  # S3 unreachable, a bucket missing: one line, not a traceback
            print(f"error: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # while planning or asking: nothing was sent (a started run handles its own)
            print("\nStopped before anything was sent.", file=sys.stderr)
            return 130

    return _on_stage(args, run)


def _on_stage(args: argparse.Namespace, command: Callable[[Any], int]) -> int:
    """Run a deployment command on the stage; AWS and settings errors end as one line and exit status 1."""
    from botocore.exceptions import BotoCoreError, ClientError

    from tooling.deploy.stage import StageError, load_stage
    from tooling.deploy.teardown import FunctionStillDeployed

    try:
        return command(load_stage(args.stage, args.settings_file))
    except (StageError, FunctionStillDeployed, ClientError, BotoCoreError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def settings_table() -> str:
    """The README's table of environment variables, generated so it cannot drift from config.py."""
    rows = ["| Variable | Default | What it does |", "|---|---|---|"]
    rows += [
        f"| `{env}` | `{default}` | {doc} |" if default else f"| `{env}` | (empty) | {doc} |"
        for env, default, doc in Settings.documentation()
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
