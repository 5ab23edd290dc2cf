"""Convert the source version AWS Batch was handed; the exit code tells Batch whether to retry.

0: the job ended in a final record (done, failed, gone), or another worker
has it, or the object has changed since (its own event will follow).
1: an exception escaped, so the job is transient by contract: the record says
``retrying``, the claim is released, and the job definition's retryStrategy
runs the container again.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

from app import events, jobs
from app.model import SourceRef, Status
from config import Settings

log = logging.getLogger("batch_fallback")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    ref = SourceRef(args.bucket, args.key, args.etag or None)
    try:
        settings = Settings.from_env()
        record = jobs.handle(ref, settings, _runtime(settings), events.SUBSCRIBERS)
    except Exception as error:  # noqa: BLE001 - every escape is a retry, by contract
        log.exception("s3://%s/%s was not converted", ref.bucket, ref.key)
        print(
            f"batch_fallback: s3://{ref.bucket}/{ref.key} failed, will be retried: "
            f"{type(error).__name__}: {error}".splitlines()[0],
            file=sys.stderr,
        )
        return 1
    if record is None:
        log.info("s3://%s/%s: duplicate or superseded, nothing to do", ref.bucket, ref.key)
        return 0
    log.info("s3://%s/%s: %s", ref.bucket, ref.key, record["status"])
    if record["status"] not in Status.FINAL:
        print(f"batch_fallback: s3://{ref.bucket}/{ref.key} ended {record['status']!r}, not final", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch_fallback", description="Convert one S3 source version (the AWS Batch job)."
    )
    parser.add_argument("--bucket", required=True, help="source bucket")
    parser.add_argument("--key", required=True, help="source key, as stored (not URL-encoded)")
    parser.add_argument("--etag", default="", help="the ETag the S3 event named (empty: whatever is there now)")
    return parser


def _runtime(settings: Settings) -> jobs.Runtime:
    """The Batch container: no deadline, no dispatch (no second tiler), billed for the job definition's size."""
    owner = settings.aws_batch_job_id or f"{socket.gethostname()}:{os.getpid()}"  # outside Batch: docker run
    return jobs.Runtime(
        owner=f"batch:{owner}", may_dispatch=False, memory_mb=settings.batch_memory_mb, vcpus=settings.batch_vcpus
    )


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,  # CloudWatch gets the container's stdout
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(main())
