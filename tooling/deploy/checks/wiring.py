"""Event wiring: the stage names its resources, the source bucket really notifies the function, nothing else does.

Zappa applies only a ``prefix`` and a ``suffix`` filter (``key_filters`` are
silently ignored) and replaces only its own notification (Id = the function
name), so a hand-made or stale notification can survive a deploy: the check
reads the bucket, not the settings.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from botocore.exceptions import ClientError

from tooling.deploy.aws import error_code
from tooling.deploy.checks import Check, Context, fail, ok, unknown

CREATED_EVENTS = {
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
}


def stage_settings(ctx: Context) -> Check:
    stage, names = ctx.stage, ctx.names
    missing = [
        var
        for var in ("SOURCE_BUCKET", "TILES_BUCKET", "METADATA_BUCKET", "BATCH_JOB_QUEUE", "BATCH_JOB_DEFINITION")
        if not stage.environment.get(var)
    ]
    problems = [f"{', '.join(missing)} not set"] if missing else []
    if f"arn:aws:s3:::{names.source_bucket}" not in [e["arn"] for e in stage.s3_events()]:
        problems.append("no S3 event for SOURCE_BUCKET")
    if stage.settings.get("role_arn") != names.role_arn(names.lambda_role) or stage.settings.get("manage_roles", True):
        problems.append(f"role_arn is not {names.lambda_role}'s with manage_roles false (Zappa makes a broad role)")
    if problems:
        return fail(
            f"{stage.path} stage {stage.name}: " + "; ".join(problems),
            f"python -m app provision {stage.name}, then zappa update {stage.name}",
        )
    return ok(f"{stage.path} stage {stage.name} names every resource and the {names.lambda_role} role")


def notification(ctx: Context) -> Check:
    names, stage = ctx.names, ctx.stage
    bucket, intended = names.source_bucket, stage.intended_filter()
    redo = f"zappa schedule {stage.name} rewrites the function's notification from the stage"
    configs = _notifications(ctx, bucket)
    mine = [c for c in configs.get("LambdaFunctionConfigurations", []) if _targets(c, names.function_arn)]
    ignored = [e for e in stage.s3_events() if e.get("key_filters")]
    if ignored:
        return fail(
            "the stage's S3 event has key_filters, which Zappa ignores",
            'use "prefix"/"suffix" in event_source instead, then ' + redo,
        )
    if not mine:
        others = [c["LambdaFunctionArn"] for c in configs.get("LambdaFunctionConfigurations", [])]
        return fail(
            f"s3://{bucket} sends no event to {names.function}"
            + (f" (it notifies {', '.join(others)})" if others else ""),
            redo,
        )
    if len(mine) > 1:
        return fail(
            f"{len(mine)} notifications on s3://{bucket} target {names.function}: "
            f"Ids {', '.join(c.get('Id', '?') for c in mine)}",
            f"remove all but Id {names.function} (aws s3api put-bucket-notification-configuration), then {redo}",
        )
    events, actual = set(mine[0]["Events"]), _filter(mine[0])
    if "s3:ObjectCreated:*" not in events and not events >= CREATED_EVENTS:
        return fail(
            f"s3://{bucket} notifies {names.function} for {', '.join(sorted(events))}, not every s3:ObjectCreated:*",
            redo,
        )
    if actual != intended:
        return fail(f"s3://{bucket} filter is {_describe(actual)}, the stage intends {_describe(intended)}", redo)
    return ok(f"s3://{bucket} s3:ObjectCreated:* -> {names.function}, {_describe(intended)}")


def invoke_permission(ctx: Context) -> Check:
    names = ctx.names
    if ctx.function is None:
        return unknown(f"function {names.function} is not deployed", f"zappa deploy {ctx.stage.name}")
    try:
        policy = json.loads(ctx.aws.lambda_.get_policy(FunctionName=names.function)["Policy"])
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        policy = {"Statement": []}
    source = f"arn:aws:s3:::{names.source_bucket}"
    if not any(_allows_s3(statement, source) for statement in policy["Statement"]):
        return fail(
            f"{names.function}'s resource policy does not let s3.amazonaws.com invoke it for {source}: "
            "S3 drops the events",
            f"zappa schedule {ctx.stage.name} adds the permission",
        )
    return ok(f"{names.function} accepts invocations from s3.amazonaws.com for {source}")


def no_self_trigger(ctx: Context) -> Check:
    names = ctx.names
    outputs = {names.tiles_bucket, names.metadata_bucket}
    shared = names.source_bucket in outputs
    problems = [f"SOURCE_BUCKET {names.source_bucket} is also an output bucket"] if shared else []
    for bucket in sorted(outputs - {names.source_bucket}):
        configs = _notifications(ctx, bucket).get("LambdaFunctionConfigurations", [])
        if any(_targets(c, names.function_arn) for c in configs):
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


def _targets(config: dict[str, Any], function_arn: str) -> bool:
    """True for the function itself or any of its versions and aliases."""
    arn = config.get("LambdaFunctionArn", "")
    return arn == function_arn or arn.startswith(function_arn + ":")


def _filter(config: dict[str, Any]) -> dict[str, str]:
    rules = config.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    return {rule["Name"].lower(): rule["Value"] for rule in rules}


def _describe(rules: dict[str, str]) -> str:
    return " and ".join(f"{k} {v!r}" for k, v in sorted(rules.items())) or "no key filter"


def _allows_s3(statement: dict[str, Any], source_arn: str) -> bool:
    actions = statement.get("Action")
    actions = [actions] if isinstance(actions, str) else actions or []
    principal = statement.get("Principal", {})
    service = principal.get("Service") if isinstance(principal, dict) else principal
    conditions = [
        value
        for operator in statement.get("Condition", {}).values()
        for key, value in operator.items()
        if key.lower() == "aws:sourcearn"
    ]
    patterns = [p for value in conditions for p in ([value] if isinstance(value, str) else value)] or [source_arn]
    return (
        statement.get("Effect") == "Allow"
        and service in ("s3.amazonaws.com", "*")
        and any(a in ("lambda:InvokeFunction", "lambda:*") for a in actions)
        and any(fnmatch.fnmatchcase(source_arn, pattern) for pattern in patterns)
    )


CHECKS = {
    "stage settings": stage_settings,
    "source notification": notification,
    "S3 may invoke": invoke_permission,
    "no self-trigger": no_self_trigger,
}
