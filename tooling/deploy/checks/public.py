"""The public side proved from outside, as a viewer meets it: anonymous HTTP requests, no credentials.

A bucket policy that reads as public can still answer 403 (the account's Block
Public Access overrides every bucket's, and GetBucketPolicyStatus does not show
it), so the doctor puts a probe tile with its own credentials, reads it back
anonymously through PUBLIC_BASE_URL and deletes it; a probe under derivatives/
must be refused the same way (the serving TIFFs are full resolution). The
dashboard's /healthz is asked through API Gateway, which takes the whole invoke
path (API Gateway assumes the function's role to call it).
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

from botocore.exceptions import ClientError

from tooling.deploy.aws import error_code
from tooling.deploy.buckets import (
    BLOCKS_PUBLIC_POLICIES,
    account_blocks,
    account_blocks_fix,
)
from tooling.deploy.checks import Check, Context, fail, ok, unknown
from tooling.deploy.checks.buckets import PROBE_KEY, answered_preflight
from tooling.deploy.documents import PRIVATE, SERVING_PREFIX

PROBE_PREFIX = "tiler-doctor/"  # the doctor's probes: random names, deleted once read


def tiles_public(ctx: Context) -> Check:
    url = ctx.public_base_url
    if not url:
        return fail("PUBLIC_BASE_URL is not set in the stage", f"python -m app provision {ctx.stage.name}")
    key, body = f"{PROBE_PREFIX}{uuid.uuid4().hex}.jpg", _probe_jpeg()
    with _probe(ctx, key, body, "image/jpeg"):
        status, answer, why = _get(f"{url}/{key}")
    if status == 200 and answer == body:
        return ok(f"an anonymous GET of {url}/{PROBE_PREFIX}... answered the probe tile the doctor put there")
    found = why or f"{status}" + (f" with {len(answer)} other bytes" if status == 200 else "")
    return fail(f"an anonymous GET of {url}/{key} answered {found}: viewers cannot read the tiles", _reach_fix(ctx))


def public_cors(ctx: Context) -> Check:
    if not ctx.public_base_url:
        return unknown("PUBLIC_BASE_URL is not set in the stage", f"python -m app provision {ctx.stage.name}")
    fix = (
        f"python -m app provision {ctx.stage.name} (the distribution forwards CORS requests to S3 and adds "
        "Access-Control-Allow-Origin; the tiles bucket's CORS rules answer the preflight)"
        if ctx.names.distribution_id
        else f"python -m app provision {ctx.stage.name} --public-bucket (sets the tiles bucket's CORS rules)"
    )
    return answered_preflight(f"{ctx.public_base_url}/{PROBE_KEY}", "GET", fix)


def serving_tiff_private(ctx: Context) -> Check:
    if not ctx.public_base_url:
        return unknown("PUBLIC_BASE_URL is not set in the stage", f"python -m app provision {ctx.stage.name}")
    key = f"{SERVING_PREFIX}{PROBE_PREFIX}{uuid.uuid4().hex}.tif"
    with _probe(ctx, key, b"tiler doctor probe", "image/tiff"):
        status, _, why = _get(f"{ctx.public_base_url}/{key}")
    if status in (403, 404):
        return ok(f"an anonymous GET of {ctx.public_base_url}/{SERVING_PREFIX}... is refused ({status})")
    if status is None:
        return unknown(f"no answer from {ctx.public_base_url} ({why})")
    return fail(
        f"an anonymous GET of {ctx.public_base_url}/{key} answered {status}: anyone can download the "
        "full-resolution serving TIFFs",
        f"python -m app provision {ctx.stage.name} (the tiles bucket's "
        f"policy denies {SERVING_PREFIX}* to anyone outside the account)",
    )


def account_public_access(ctx: Context) -> Check:
    blocking = account_blocks(ctx.aws)
    if not blocking:
        return ok(f"account {ctx.aws.account} blocks no public bucket policy")
    settings = ", ".join(blocking)
    if ctx.names.distribution_id:
        return ok(
            f"account {ctx.aws.account} blocks public bucket policies ({settings}): harmless, CloudFront "
            "reads the private tiles bucket with its Origin Access Control"
        )
    return fail(
        f"account {ctx.aws.account} blocks public bucket policies ({settings}), whatever the tiles bucket "
        "says: viewers get 403 for every tile",
        account_blocks_fix(ctx.aws.account, ctx.stage.name),
    )


def tiles_cdn(ctx: Context) -> Check:
    """The distribution serves the stage's PUBLIC_BASE_URL from the private tiles bucket, signing its requests."""
    names, provision = ctx.names, f"python -m app provision {ctx.stage.name}"
    block = _tiles_block(ctx)
    if not names.distribution_id:
        if any(block.get(setting) for setting in BLOCKS_PUBLIC_POLICIES):
            return fail(
                f"no CloudFront distribution (CDN_DISTRIBUTION_ID unset), and s3://{names.tiles_bucket} "
                "blocks public policies: nobody can read the tiles",
                provision,
            )
        return ok("no CloudFront distribution: the tiles bucket is public itself (provision --public-bucket)")
    try:
        found = ctx.aws.client("cloudfront").get_distribution(Id=names.distribution_id)["Distribution"]
    except ClientError as error:
        if error_code(error) != "NoSuchDistribution":
            raise
        return fail(f"distribution {names.distribution_id} (CDN_DISTRIBUTION_ID) does not exist", provision)
    config, origin = found["DistributionConfig"], found["DistributionConfig"]["Origins"]["Items"][0]
    hosts = [found["DomainName"], *(config["Aliases"].get("Items") or [])]
    stage_url = ctx.stage.environment.get("PUBLIC_BASE_URL", "")
    problems = [
        problem
        for problem, wrong in (
            ("it is disabled", not config["Enabled"]),
            (
                f"its origin is {origin['DomainName']}, not {names.tiles_domain}",
                origin["DomainName"] != names.tiles_domain,
            ),
            (
                "it has no Origin Access Control (unsigned, its reads of the private bucket are refused)",
                not origin.get("OriginAccessControlId"),
            ),
            (
                f"PUBLIC_BASE_URL {stage_url} is none of https://{', https://'.join(hosts)}",
                stage_url.rstrip("/") not in [f"https://{host}" for host in hosts],
            ),
            (f"s3://{names.tiles_bucket} does not block all public access", not all(block.get(k) for k in PRIVATE)),
        )
        if wrong
    ]
    if problems:
        return fail(f"distribution {names.distribution_id}: " + "; ".join(problems), provision)
    if found["Status"] != "Deployed":
        return unknown(
            f"distribution {names.distribution_id} is {found['Status']}: CloudFront is still deploying "
            "its last change (about 15 minutes)",
            f"python -m app doctor {ctx.stage.name} again later",
        )
    return ok(f"distribution {names.distribution_id} serves {stage_url} from the private s3://{names.tiles_bucket}")


def dashboard(ctx: Context) -> Check:
    if ctx.function is None:
        return unknown(f"function {ctx.names.function} is not deployed", f"zappa deploy {ctx.stage.name}")
    base = ctx.dashboard_url or api_url(ctx)
    if not base:
        return fail(f"API Gateway has no REST API named {ctx.names.function}", f"zappa deploy {ctx.stage.name}")
    url = f"{base.rstrip('/')}/healthz"
    status, body, why = _get(url)
    try:
        healthy = status == 200 and json.loads(body) == {"ok": True}
    except ValueError:
        healthy = False
    if healthy:
        return ok(f'{url} answers 200 {{"ok": true}}')
    fixes = {
        500: f"API Gateway could not invoke the function: python -m app provision {ctx.stage.name} (the "
        "function's role trusts apigateway.amazonaws.com and may invoke the function; API Gateway calls it "
        f"with that role), then zappa update {ctx.stage.name}; see the 'API may invoke' line",
        502: f"the function failed or answered no valid response: zappa tail {ctx.stage.name}",
    }
    return fail(
        f"{url} answered {why or status}" + (f": {body[:120]!r}" if body else ""),
        fixes.get(status, f"zappa update {ctx.stage.name} (redeploys the API), then zappa tail {ctx.stage.name}"),
    )


def _tiles_block(ctx: Context) -> dict[str, bool]:
    try:
        return ctx.aws.s3.get_public_access_block(Bucket=ctx.names.tiles_bucket)["PublicAccessBlockConfiguration"]
    except ClientError as error:
        if error_code(error) != "NoSuchPublicAccessBlockConfiguration":
            raise
        return {}


def api_url(ctx: Context) -> str | None:
    """The stage's URL in Zappa's REST API (named after the function, deployed to a stage named after ours)."""
    pages = ctx.aws.client("apigateway").get_paginator("get_rest_apis").paginate()
    found = next((api for page in pages for api in page["items"] if api["name"] == ctx.names.function), None)
    return found and f"https://{found['id']}.execute-api.{ctx.aws.region}.amazonaws.com/{ctx.stage.name}"


def _reach_fix(ctx: Context) -> str:
    if ctx.names.distribution_id:
        return (
            f"python -m app provision {ctx.stage.name} (the bucket policy lets distribution "
            f"{ctx.names.distribution_id} read); a distribution created or changed in the last 15 minutes may "
            "still be deploying: see the 'tiles CDN' line"
        )
    return (
        f"python -m app provision {ctx.stage.name} --public-bucket; if the account blocks public policies (see "
        f"the 'account public access' line), serve the tiles through CloudFront: python -m app provision "
        f"{ctx.stage.name} --cloudfront"
    )


@contextlib.contextmanager
def _probe(ctx: Context, key: str, body: bytes, content_type: str) -> Iterator[None]:
    """An object in the tiles bucket for the length of the block; never cached (no-store)."""
    s3, bucket = ctx.aws.s3, ctx.names.tiles_bucket
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, CacheControl="no-store")
    try:
        yield
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


def _get(url: str) -> tuple[int | None, bytes, str]:
    """(status, body, "") of an anonymous GET, or (None, b"", why) when nothing answered."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url), timeout=15) as answer:
            return answer.status, answer.read(), ""
    except urllib.error.HTTPError as error:
        return error.code, error.read(), ""
    except OSError as error:
        return None, b"", f"no answer ({getattr(error, 'reason', error)})"


def _probe_jpeg() -> bytes:
    import pyvips  # the doctor's only image: imported when the check runs

    return pyvips.Image.black(8, 8).jpegsave_buffer()


CHECKS = {
    "tiles CDN": tiles_cdn,
    "tiles public": tiles_public,
    "public CORS": public_cors,
    "serving TIFF private": serving_tiff_private,
    "account public access": account_public_access,
    "dashboard": dashboard,
}
