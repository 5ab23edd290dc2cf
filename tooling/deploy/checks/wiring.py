"""Event wiring: the stage names its resources, the source bucket notifies the event queue, nothing else does.

The notification is read from the bucket, not trusted from the settings: a
hand-made or stale one (Zappa's own direct wiring, from before the queue) can
survive a deploy.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from tooling.deploy import queues
from tooling.deploy.aws import error_code
from tooling.deploy.checks import Check, Context, fail, ok, unknown
from tooling.deploy.stage import S3_EVENT_FUNCTION, SWEEP_FUNCTION

CREATED_EVENTS = {
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
}
REMOVED_EVENTS = {"s3:ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated"}


def stage_settings(ctx: Context) -> Check:
    stage, names = ctx.stage, ctx.names
    missing = [
        var
        for var in (
            "SOURCE_BUCKET",
            "TILES_BUCKET",
            "METADATA_BUCKET",
            "BATCH_JOB_QUEUE",
            "BATCH_JOB_DEFINITION",
            "EVENT_QUEUE",
            "DEAD_LETTER_QUEUE",
        )
        if not stage.environment.get(var)
    ]
    problems = [f"{', '.join(missing)} not set"] if missing else []
    queue_arn = names.queue_arn(names.event_queue)
    wired = [e for e in stage.settings.get("events") or [] if e.get("event_source", {}).get("arn") == queue_arn]
    if not any(e.get("function") == S3_EVENT_FUNCTION for e in wired):
        problems.append(f"no event of {names.event_queue} for {S3_EVENT_FUNCTION}")
    elif not all(e["event_source"].get("enabled", True) for e in wired):
        problems.append(f"the {names.event_queue} event is disabled (zappa update would disable the mapping)")
    if f"arn:aws:s3:::{names.source_bucket}" in [e["arn"] for e in stage.s3_events()]:
        problems.append("Zappa still wires SOURCE_BUCKET to the function directly (each event would come twice)")
    if not any(e.get("function") == SWEEP_FUNCTION and e.get("expression") for e in stage.settings.get("events", [])):
        problems.append(f"no schedule for {SWEEP_FUNCTION} (stuck jobs would stay stuck)")
    if stage.settings.get("role_arn") != names.role_arn(names.lambda_role) or stage.settings.get("manage_roles", True):
        problems.append(f"role_arn is not {names.lambda_role}'s with manage_roles false (Zappa makes a broad role)")
    if problems:
        return fail(
            f"{stage.path} stage {stage.name}: " + "; ".join(problems),
            f"python -m app provision {stage.name}, then zappa update {stage.name}",
        )
    return ok(f"{stage.path} stage {stage.name} names every resource, the queue's event, the sweep and the role")


def notification(ctx: Context) -> Check:
    names, stage = ctx.names, ctx.stage
    bucket, queue_arn = names.source_bucket, names.queue_arn(names.event_queue)
    redo = f"python -m app provision {stage.name} rewrites it (in one request: no upload goes unannounced)"
    configs = _notifications(ctx, bucket)
    direct = [c for c in configs.get("LambdaFunctionConfigurations", []) if queues.targets(c, names.function_arn)]
    if direct:
        return fail(
            f"s3://{bucket} still invokes {names.function} directly (Zappa's old wiring): every event would run twice",
            redo,
        )
    mine = [c for c in configs.get("QueueConfigurations", []) if c.get("QueueArn") == queue_arn]
    if not mine:
        others = [c.get("QueueArn") for c in configs.get("QueueConfigurations", [])]
        return fail(
            f"s3://{bucket} sends no event to {names.event_queue}"
            + (f" (it notifies {', '.join(others)})" if others else "")
            + ": uploads are never converted",
            redo,
        )
    events = {e for c in mine for e in c["Events"]}
    missing = [
        wanted
        for wanted, every in (("s3:ObjectCreated:*", CREATED_EVENTS), ("s3:ObjectRemoved:*", REMOVED_EVENTS))
        if wanted not in events and not events >= every
    ]
    filtered = [c for c in mine if c.get("Filter", {}).get("Key", {}).get("FilterRules")]
    if missing or filtered:
        return fail(
            f"s3://{bucket} -> {names.event_queue} "
            + (f"lacks {', '.join(missing)}" if missing else "filters keys: some uploads would get no event"),
            redo,
        )
    return ok(f"s3://{bucket} s3:ObjectCreated:* and s3:ObjectRemoved:* -> {names.event_queue}, no key filter")


def no_direct_invoke(ctx: Context) -> Check:
    """S3 no longer invokes the function: a permission left from Zappa's wiring only grows the policy."""
    names = ctx.names
    if ctx.function is None:
        return unknown(f"function {names.function} is not deployed", f"zappa deploy {ctx.stage.name}")
    try:
        policy = json.loads(ctx.aws.lambda_.get_policy(FunctionName=names.function)["Policy"])
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        policy = {"Statement": []}
    stale = [s for s in policy["Statement"] if queues.s3_invoke(s)]
    if stale:
        return fail(
            f"{names.function}'s resource policy keeps {len(stale)} S3 invoke statement(s) from Zappa's wiring "
            "(the policy's 20 KB limit would stop deploys)",
            f"python -m app provision {ctx.stage.name} removes them",
        )
    return ok(f"{names.function}'s resource policy lets no S3 bucket invoke it (S3 notifies the queue)")


def no_self_trigger(ctx: Context) -> Check:
    names = ctx.names
    outputs = {names.tiles_bucket, names.metadata_bucket}
    shared = names.source_bucket in outputs
    problems = [f"SOURCE_BUCKET {names.source_bucket} is also an output bucket"] if shared else []
    for bucket in sorted(outputs - {names.source_bucket}):
        configs = _notifications(ctx, bucket).get("LambdaFunctionConfigurations", [])
        if any(queues.targets(c, names.function_arn) for c in configs):
            problems.append(f"s3://{bucket} notifies {names.function}")
    wired = [e["arn"] for e in ctx.stage.s3_events() if e["arn"] != f"arn:aws:s3:::{names.source_bucket}"]
    problems += [f"the stage wires {arn} to the function" for arn in wired]
    if problems:
        return fail(
            "; ".join(problems),
            "keep tiles and metadata in their own buckets with no notification to "
            "the function (remove it with aws s3api put-bucket-notification-configuration and from the "
            "stage's events), then zappa update " + ctx.stage.name,
        )
    return ok(f"outputs go to {' and '.join(sorted(outputs))}, which never notify {names.function}")


def _notifications(ctx: Context, bucket: str) -> dict[str, Any]:
    return ctx.aws.s3.get_bucket_notification_configuration(Bucket=bucket)


CHECKS = {
    "stage settings": stage_settings,
    "source notification": notification,
    "no direct S3 invoke": no_direct_invoke,
    "no self-trigger": no_self_trigger,
}
