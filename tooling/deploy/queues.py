"""Durable event delivery: the event queue and its dead letters, the source bucket's notification, the mapping.

S3 sends every ObjectCreated and ObjectRemoved of the source bucket to the
stage's SQS queue, so an event is stored before any code runs; the function
consumes it through an event source mapping that ``provision`` owns (Zappa sets
neither ``ScalingConfig`` nor ``FunctionResponseTypes`` on a mapping, and leaves
an existing one's alone). The notification is written in one request that
replaces the whole configuration, so rewriting it opens no window in which an
upload gets no event (Zappa's own S3 wiring removes, then adds), and no S3
invoke permission is needed, so none accumulates in the function's policy.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from config import Settings
from tooling.deploy import documents
from tooling.deploy.aws import Aws, error_code
from tooling.deploy.changes import Change, updated_or_unchanged
from tooling.deploy.stage import OWNER_TAG, Names, Stage

NOTIFIED_EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]  # removals: a deleted source is taken down
RETENTION_SECONDS = 14 * 24 * 3600  # SQS's longest: an outage of up to two weeks loses no event
VISIBILITY_PER_TIMEOUT = 6  # Lambda's advice for a queue behind a function: six times the function's timeout
REPORT_FAILURES = "ReportBatchItemFailures"
DASHBOARD_HEADROOM = 10  # concurrent executions the account keeps beyond the conversions, for the dashboard


def notification_id(names: Names) -> str:
    return f"{names.function}-events"


def queue_attributes(stage: Stage, names: Names, limits: Settings) -> dict[str, dict[str, str]]:
    """What each queue must say, by name."""
    return {
        names.dead_letter_queue: {"MessageRetentionPeriod": str(RETENTION_SECONDS), "SqsManagedSseEnabled": "true"},
        names.event_queue: {
            "MessageRetentionPeriod": str(RETENTION_SECONDS),
            "SqsManagedSseEnabled": "true",
            "VisibilityTimeout": str(VISIBILITY_PER_TIMEOUT * stage.timeout_seconds),
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": names.queue_arn(names.dead_letter_queue),
                    "maxReceiveCount": limits.max_receives,
                }
            ),
            "Policy": json.dumps(documents.queue_policy(names)),
        },
    }


def ensure_queue(aws: Aws, name: str, attributes: dict[str, str], detail: str, tags: dict[str, str]) -> Change:
    sqs = aws.client("sqs")
    url = _url(aws, name)
    if url is None:
        sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)
        return Change("created", "queue", name, detail)
    have = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    differing = {k: v for k, v in attributes.items() if not _same(k, have.get(k), v)}
    if differing:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=differing)
    return updated_or_unchanged("queue", name, sorted(differing))


def ensure_notification(aws: Aws, names: Names) -> Change:
    """The source bucket notifies the event queue of every creation and removal, and the function of nothing.

    One PutBucketNotificationConfiguration replaces the whole configuration at
    once: configurations of others are kept, Zappa's old direct wiring to the
    function is dropped (it would deliver every event twice).
    """
    s3, bucket = aws.s3, names.source_bucket
    have = s3.get_bucket_notification_configuration(Bucket=bucket)
    have.pop("ResponseMetadata", None)
    ours = {"Id": notification_id(names), "QueueArn": names.queue_arn(names.event_queue), "Events": NOTIFIED_EVENTS}
    queues = [c for c in have.get("QueueConfigurations", []) if c.get("Id") != ours["Id"]]
    functions = [c for c in have.get("LambdaFunctionConfigurations", []) if not targets(c, names.function_arn)]
    wanted = {**have, "QueueConfigurations": [*queues, ours], "LambdaFunctionConfigurations": functions}
    wanted = {k: v for k, v in wanted.items() if v}
    if _normalised(wanted) == _normalised(have):
        return Change("unchanged", "notification", f"s3://{bucket}")
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=wanted, SkipDestinationValidation=False
    )
    dropped = len(have.get("LambdaFunctionConfigurations", [])) - len(functions)
    existed = any(c.get("Id") == ours["Id"] for c in have.get("QueueConfigurations", []))
    return Change(
        "updated" if existed else "created",
        "notification",
        f"s3://{bucket}",
        f"{' and '.join(NOTIFIED_EVENTS)} -> {names.event_queue}"
        + (f"; removed {dropped} direct notification(s) of {names.function}" if dropped else ""),
    )


def mapping_spec(limits: Settings) -> dict[str, Any]:
    return {
        "BatchSize": limits.event_batch_size,
        "MaximumBatchingWindowInSeconds": 0,
        "ScalingConfig": {"MaximumConcurrency": limits.maximum_concurrency},
        "FunctionResponseTypes": [REPORT_FAILURES],
        "Enabled": True,
    }


def find_mapping(aws: Aws, names: Names) -> dict[str, Any] | None:
    found = aws.lambda_.list_event_source_mappings(
        FunctionName=names.function_arn, EventSourceArn=names.queue_arn(names.event_queue)
    )["EventSourceMappings"]
    return found[0] if found else None


def ensure_mapping(aws: Aws, names: Names, limits: Settings, stage_name: str) -> Change:
    """The function consumes the queue: batches, a concurrency cap, per-message failures. Needs the function."""
    name = f"{names.event_queue} -> {names.function}"
    if not function_exists(aws, names.function):
        return Change(
            "skipped",
            "event source mapping",
            name,
            f"the function is not deployed yet: run python -m app provision {stage_name} again after zappa deploy "
            "(events wait in the queue meanwhile)",
        )
    spec, mapping = mapping_spec(limits), find_mapping(aws, names)
    detail = (
        f"batches of {spec['BatchSize']}, at most {limits.maximum_concurrency} at once, failures reported per message"
    )
    if mapping is None:
        aws.lambda_.create_event_source_mapping(
            FunctionName=names.function_arn, EventSourceArn=names.queue_arn(names.event_queue), **spec
        )
        return Change("created", "event source mapping", name, detail)
    enabled = mapping.get("State") in ("Enabled", "Enabling", "Creating", "Updating")
    have = {**mapping, "Enabled": enabled}
    differing = [k for k, v in spec.items() if not documents.covers(have.get(k), v)]
    if differing:
        aws.lambda_.update_event_source_mapping(UUID=mapping["UUID"], **spec)
    return updated_or_unchanged("event source mapping", name, differing)


def remove_s3_invoke_permissions(aws: Aws, names: Names) -> Change | None:
    """Zappa's S3 wiring added an invoke permission on every deploy and never removed one; S3 no longer invokes."""
    try:
        policy = json.loads(aws.lambda_.get_policy(FunctionName=names.function)["Policy"])
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise
    stale = [s["Sid"] for s in policy.get("Statement", []) if s3_invoke(s)]
    for sid in stale:
        aws.lambda_.remove_permission(FunctionName=names.function, StatementId=sid)
    return updated_or_unchanged(
        "function policy", names.function, [f"removed {len(stale)} S3 invoke statement(s)"] if stale else []
    )


def concurrency_headroom(aws: Aws, limits: Settings) -> tuple[bool, str]:
    """Whether MAXIMUM_CONCURRENCY leaves the dashboard DASHBOARD_HEADROOM of the account's concurrency."""
    limit = account_concurrency(aws)
    spare = limit - limits.maximum_concurrency
    text = (
        f"conversions take at most {limits.maximum_concurrency} of the account's {limit} unreserved concurrent "
        f"executions, {spare} left for the dashboard and everything else"
    )
    return spare >= DASHBOARD_HEADROOM, text


def account_concurrency(aws: Aws) -> int:
    """The account's Lambda concurrency not reserved by any function (new accounts may have as little as 10)."""
    return aws.lambda_.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]


def delete_queue(aws: Aws, name: str, owner: str) -> Change:
    sqs = aws.client("sqs")
    url = _url(aws, name)
    if url is None:
        return Change("absent", "queue", name)
    if sqs.list_queue_tags(QueueUrl=url).get("Tags", {}).get(OWNER_TAG) != owner:
        return Change("kept", "queue", name, f"not created by provisioning (no {OWNER_TAG}={owner} tag)")
    sqs.delete_queue(QueueUrl=url)
    return Change("deleted", "queue", name)


def function_exists(aws: Aws, name: str) -> bool:
    try:
        aws.lambda_.get_function_configuration(FunctionName=name)
        return True
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return False
        raise


def targets(config: dict[str, Any], function_arn: str) -> bool:
    """True for the function itself or any of its versions and aliases."""
    arn = config.get("LambdaFunctionArn", "")
    return arn == function_arn or arn.startswith(function_arn + ":")


def s3_invoke(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal", {})
    service = principal.get("Service") if isinstance(principal, dict) else principal
    return statement.get("Effect") == "Allow" and service == "s3.amazonaws.com"


def queue_url(aws: Aws, name: str) -> str | None:
    return _url(aws, name)


def _url(aws: Aws, name: str) -> str | None:
    try:
        return aws.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as error:
        if error_code(error) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return None
        raise


def _same(key: str, have: str | None, want: str) -> bool:
    if have is None:
        return False
    if key == "RedrivePolicy":  # SQS may answer maxReceiveCount as a string
        return {k: str(v) for k, v in json.loads(have).items()} == {k: str(v) for k, v in json.loads(want).items()}
    if key == "Policy":
        return json.loads(have) == json.loads(want)
    return have.lower() == want.lower()


def _normalised(configuration: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in configuration.items() if v}, sort_keys=True)
