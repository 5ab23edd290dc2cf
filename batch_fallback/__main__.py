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

from app import jobs
from app.model import SourceRef, Status
from config import Settings

log = logging.getLogger("batch_fallback")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ref = SourceRef(args.bucket, args.key, args.etag or None)
    try:
        record = jobs.handle(ref, Settings.from_env(), jobs.Runtime(owner=_owner(), may_dispatch=False))
    except Exception as error:  # noqa: BLE001 - every escape is a retry, by contract
        log.exception("s3://%s/%s was not converted", ref.bucket, ref.key)
        print(f"batch_fallback: s3://{ref.bucket}/{ref.key} failed, will be retried: "
              f"{type(error).__name__}: {error}".splitlines()[0], file=sys.stderr)
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
    parser = argparse.ArgumentParser(prog="python -m batch_fallback",
                                     description="Convert one S3 source version (the AWS Batch job).")
    parser.add_argument("--bucket", required=True, help="source bucket")
    parser.add_argument("--key", required=True, help="source key, as stored (not URL-encoded)")
    parser.add_argument("--etag", default="", help="the ETag the S3 event named (empty: whatever is there now)")
    return parser


def _owner() -> str:
    # Batch sets AWS_BATCH_JOB_ID; config.py is the only reader of the environment, so until
    # Settings carries it, the container's host name (unique per Fargate task) names the owner.
    return f"batch:{socket.gethostname()}:{os.getpid()}"


if __name__ == "__main__":
    sys.exit(main())
