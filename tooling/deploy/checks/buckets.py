"""Buckets as browsers meet them: CORS rules, the dashboard's upload preflight answered for real, metadata private.

A preflight is sent the way a browser on another site sends it (OPTIONS with
Origin and Access-Control-Request-Method) to the bucket's own endpoint, and the
CORS rules are read as well: some S3-compatible endpoints (moto among them)
answer every preflight permissively when a bucket has no rules at all. The
tiles' public side (anonymous reads and a viewer's preflight through
PUBLIC_BASE_URL) is checked from outside in checks/public.py.
"""

from __future__ import annotations

import fnmatch
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlparse

from botocore.exceptions import ClientError

from tooling.deploy.aws import error_code
from tooling.deploy.checks import Check, Context, fail, ok

VIEWER_ORIGIN = "https://viewer.example.org"  # any site: viewers embed tiles everywhere
PROBE_KEY = "tiler-doctor/probe/info.json"  # need not exist: S3 answers preflights from the bucket's rules


def tiles_cors(ctx: Context) -> Check:
    """S3 answers a viewer's preflight from these rules, forwarded by CloudFront or sent to a public bucket."""
    bucket = ctx.names.tiles_bucket
    return _missing_rule(ctx, bucket, "GET") or ok(f"s3://{bucket} has a CORS rule allowing GET from any origin")


def upload_cors(ctx: Context) -> Check:
    bucket = ctx.names.source_bucket
    return _missing_rule(ctx, bucket, "POST") or answered_preflight(
        object_url(ctx, bucket, PROBE_KEY), "POST", _cors_fix(ctx, "POST")
    )


def answered_preflight(url: str, method: str, fix: str) -> Check:
    """A preflight from another site for ``method``, answered with what a browser needs to go on."""
    try:
        status, headers = preflight(url, VIEWER_ORIGIN, method)
    except OSError as error:  # urllib's URLError: no answer at all
        return fail(f"a preflight to {url} got no answer ({getattr(error, 'reason', error)})", fix)
    allowed_origin = headers.get("access-control-allow-origin")
    methods = [m.strip() for m in headers.get("access-control-allow-methods", "").split(",")]
    if status != 200 or allowed_origin not in ("*", VIEWER_ORIGIN) or method not in methods:
        return fail(
            f"a preflight from {VIEWER_ORIGIN} for {method} to {url} got {status}, "
            f"Access-Control-Allow-Origin {allowed_origin!r}, -Methods {', '.join(methods)!r}",
            fix,
        )
    return ok(f"{url} answers a preflight from any origin for {method} (Access-Control-Allow-Origin {allowed_origin})")


def metadata_private(ctx: Context) -> Check:
    bucket = ctx.names.metadata_bucket
    try:
        block = ctx.aws.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as error:
        if error_code(error) != "NoSuchPublicAccessBlockConfiguration":
            raise
        block = {}
    open_settings = [
        key
        for key in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
        if not block.get(key)
    ]
    if open_settings:
        return fail(
            f"s3://{bucket} does not block public access ({', '.join(open_settings)} off): job records "
            "and source keys could be exposed",
            f"python -m app provision {ctx.stage.name}",
        )
    return ok(f"s3://{bucket} blocks all public access")


def _missing_rule(ctx: Context, bucket: str, method: str) -> Check | None:
    """A FAIL when the bucket's CORS rules do not allow ``method`` from any origin, else None."""
    try:
        rules = ctx.aws.s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    except ClientError as error:
        if error_code(error) != "NoSuchCORSConfiguration":
            raise
        rules = []
    if any(_allows(rule, VIEWER_ORIGIN, method) for rule in rules):
        return None
    return fail(
        f"s3://{bucket} has no CORS rule allowing {method} from any origin"
        + ("" if rules else " (no CORS rules at all)"),
        _cors_fix(ctx, method),
    )


def _cors_fix(ctx: Context, method: str) -> str:
    return f"python -m app provision {ctx.stage.name} (sets {method} from any origin)"


def preflight(url: str, origin: str, method: str) -> tuple[int, dict[str, str]]:
    """(status, lower-cased headers) of a browser's CORS preflight."""
    request = urllib.request.Request(
        url, method="OPTIONS", headers={"Origin": origin, "Access-Control-Request-Method": method}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def object_url(ctx: Context, bucket: str, key: str) -> str:
    """The URL a browser uses: virtual-hosted on AWS, path-style on any other S3 endpoint."""
    endpoint = ctx.aws.s3.meta.endpoint_url
    if (urlparse(endpoint).hostname or "").endswith("amazonaws.com"):
        return f"https://{bucket}.s3.{ctx.aws.region}.amazonaws.com/{quote(key)}"
    return f"{endpoint.rstrip('/')}/{bucket}/{quote(key)}"


def _allows(rule: dict[str, Any], origin: str, method: str) -> bool:
    return method in rule.get("AllowedMethods", []) and any(
        fnmatch.fnmatchcase(origin, pattern) for pattern in rule.get("AllowedOrigins", [])
    )


CHECKS = {"tiles CORS": tiles_cors, "upload CORS": upload_cors, "metadata private": metadata_private}
