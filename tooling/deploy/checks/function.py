"""The deployed function: its role, its limits against the routing settings, and what it reports about itself.

Routing keeps a job in Lambda only when the source fits LAMBDA_MAX_BYTES and
LAMBDA_MAX_PIXELS and the estimated time fits what is left of the invocation,
so the function needs Lambda's longest timeout, enough /tmp for the source
plus its tiles, and at least one full vCPU (1,769 MB), the speed that
LAMBDA_MEGAPIXELS_PER_SECOND assumes.
"""

from __future__ import annotations

import math

from app.pipeline import jp2
from config import Settings
from tooling.deploy import iam
from tooling.deploy.checks import Check, Context, fail, ok, unknown

MAX_TIMEOUT_SECONDS = 900
MIN_MEMORY_MB = 1769
OUTPUT_BYTES_PER_PIXEL = 0.5  # JPEG tiles at quality 85 of a photograph, whole pyramid, with margin
SERVING_TIFF_BYTES_PER_PIXEL = 0.5  # the same pyramid again, as the dynamic endpoint's JPEG-compressed TIFF
SCRATCH_HEADROOM_MB = 512  # Python, exiftool and libvips temporaries
COMPARED = (
    "source_bucket",
    "tiles_bucket",
    "metadata_bucket",
    "batch_job_queue",
    "batch_job_definition",
    "lambda_max_bytes",
    "lambda_max_pixels",
)


def ephemeral_needed_mb(limits: Settings) -> int:
    """/tmp the largest Lambda job needs: the source download plus the tiles (and serving TIFF) written beside it."""
    per_pixel = OUTPUT_BYTES_PER_PIXEL + (SERVING_TIFF_BYTES_PER_PIXEL if limits.serving_tiff else 0)
    needed = limits.lambda_max_bytes + limits.lambda_max_pixels * per_pixel
    return math.ceil(needed / 2**20) + SCRATCH_HEADROOM_MB


def deployed(ctx: Context) -> Check:
    names = ctx.names
    if ctx.function is None:
        return fail(f"{names.function} is not deployed in {ctx.aws.region}", f"zappa deploy {ctx.stage.name}")
    role = ctx.function["Role"]
    if role != names.role_arn(names.lambda_role):
        return fail(
            f"{names.function} runs as {role}, not the least-privilege {names.lambda_role}",
            f"python -m app provision {ctx.stage.name} (sets role_arn), then zappa update {ctx.stage.name}",
        )
    return ok(f"{names.function} is deployed and runs as {names.lambda_role}")


def api_may_invoke(ctx: Context) -> Check:
    """Zappa's REST API calls the function with the function's own role (the integration's ``Credentials``):
    without trust for API Gateway and ``lambda:InvokeFunction``, every dashboard request answers 500."""
    if ctx.function is None:
        return _not_deployed(ctx)
    role, function = ctx.function["Role"], ctx.names.function_arn
    fix = f"python -m app provision {ctx.stage.name} (the role trusts API Gateway and may invoke only this function)"
    found = iam.role_documents(ctx.aws, role)
    if found is None:
        return fail(f"{role} does not exist", fix)
    trust_policy, policies = found
    problems = [
        problem
        for problem, found in (
            ("does not trust apigateway.amazonaws.com", iam.trusts(trust_policy, "apigateway.amazonaws.com")),
            (f"may not invoke {function}", iam.allows(policies, "lambda:InvokeFunction", function)),
        )
        if not found
    ]
    if problems:
        return fail(
            f"API Gateway invokes the function as {role}, which "
            + " and ".join(problems)
            + ": every dashboard and /iiif request would answer 500",
            fix,
        )
    return ok(f"API Gateway may invoke {ctx.names.function} as {role.rsplit('/', 1)[-1]}")


def timeout(ctx: Context) -> Check:
    if ctx.function is None:
        return _not_deployed(ctx)
    seconds, setting = ctx.function["Timeout"], ctx.stage.settings.get("timeout_seconds")
    if seconds < MAX_TIMEOUT_SECONDS:
        fix = (
            f"zappa update {ctx.stage.name}"
            if setting == MAX_TIMEOUT_SECONDS
            else f'set "timeout_seconds": {MAX_TIMEOUT_SECONDS} in the stage, then zappa update {ctx.stage.name}'
        )
        return fail(f"{seconds} s: jobs that fit LAMBDA_MAX_PIXELS may run out of time", fix)
    return ok(f"{seconds} s")


def ephemeral_storage(ctx: Context) -> Check:
    if ctx.function is None:
        return _not_deployed(ctx)
    have, need = ctx.function.get("EphemeralStorage", {}).get("Size", 512), ephemeral_needed_mb(ctx.limits)
    if have < need:
        return fail(
            f"{have} MB, a source of LAMBDA_MAX_BYTES={ctx.limits.lambda_max_bytes} and its tiles need {need} MB",
            f'set "ephemeral_storage": {{"Size": {max(need, 512)}}} (at most 10240) or '
            f"lower LAMBDA_MAX_BYTES in the stage, then zappa update {ctx.stage.name}",
        )
    return ok(f"{have} MB, at least the {need} MB that LAMBDA_MAX_BYTES and LAMBDA_MAX_PIXELS need")


def memory(ctx: Context) -> Check:
    if ctx.function is None:
        return _not_deployed(ctx)
    have, setting = ctx.function["MemorySize"], ctx.stage.settings.get("memory_size")
    if have < MIN_MEMORY_MB:
        return fail(
            f"{have} MB is less than one vCPU: the routing's time estimate would be too optimistic",
            f'set "memory_size" to at least {MIN_MEMORY_MB} in the stage, then zappa update {ctx.stage.name}',
        )
    if setting is not None and have != setting:
        return fail(f"{have} MB deployed, the stage says {setting} MB", f"zappa update {ctx.stage.name}")
    jp2_needed = ctx.limits.lambda_max_jp2_pixels / 1e6 * jp2.DECODE_MB_PER_MEGAPIXEL
    if "jp2k" in ctx.limits.allowed_formats and have < jp2_needed:
        fits = int(have / jp2.DECODE_MB_PER_MEGAPIXEL) * 1_000_000
        return fail(
            f"{have} MB cannot decode a JPEG 2000 of LAMBDA_MAX_JP2_PIXELS={ctx.limits.lambda_max_jp2_pixels:,}"
            f" (about {jp2_needed:,.0f} MB)",
            f"set LAMBDA_MAX_JP2_PIXELS to at most {fits} in the stage "
            f"(or raise memory_size), then zappa update {ctx.stage.name}",
        )
    return ok(f"{have} MB (at least one full vCPU, and a JPEG 2000 of LAMBDA_MAX_JP2_PIXELS decodes in it)")


def exiftool(ctx: Context) -> Check:
    if ctx.function is None:
        return _not_deployed(ctx)
    report, why = ctx.report
    if report is None:
        return unknown(
            why,
            f"deploy this code (zappa update {ctx.stage.name}), then try "
            f"zappa invoke {ctx.stage.name} app.diagnostics.report and read its logs",
        )
    result = report.get("exiftool", {})
    if not result.get("ok"):
        return fail(
            f"does not run: {result.get('error', 'no reason given')}",
            "deploy the container image (batch_fallback/Dockerfile, which has Perl and exiftool) with "
            f"zappa deploy {ctx.stage.name} --docker-image-uri URI; the zip runtime has no Perl",
        )
    return ok(f"exiftool {result.get('version')} read a test image's tags inside {ctx.names.function}")


def settings_seen(ctx: Context) -> Check:
    if ctx.function is None:
        return _not_deployed(ctx)
    report, why = ctx.report
    if report is None:
        return unknown(why)
    seen = report.get("settings", {})
    differing = [
        f"{key}={seen.get(key)!r} (stage: {getattr(ctx.limits, key)!r})"
        for key in COMPARED
        if seen.get(key) != getattr(ctx.limits, key)
    ]
    if differing:
        return fail("the function sees " + "; ".join(differing), f"zappa update {ctx.stage.name}")
    return ok("the function sees the stage's buckets, queue, job definition and limits")


def _not_deployed(ctx: Context) -> Check:
    return unknown(f"function {ctx.names.function} is not deployed", f"zappa deploy {ctx.stage.name}")


CHECKS = {
    "function": deployed,
    "API may invoke": api_may_invoke,
    "function timeout": timeout,
    "function /tmp": ephemeral_storage,
    "function memory": memory,
    "exiftool in the function": exiftool,
    "function settings": settings_seen,
}
