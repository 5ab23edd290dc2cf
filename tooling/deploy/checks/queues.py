"""Durable delivery: the event queue, its dead letters, the function's event source mapping, concurrency, alarms."""

from __future__ import annotations

import json

from tooling.deploy import alarms, iam, queues
from tooling.deploy.checks import Check, Context, fail, ok, unknown


def event_queue(ctx: Context) -> Check:
    names, stage = ctx.names, ctx.stage
    fix = f"python -m app provision {stage.name}"
    url = queues.queue_url(ctx.aws, names.event_queue)
    if url is None:
        return fail(f"queue {names.event_queue} does not exist: S3 has nowhere to send events", fix)
    have = ctx.aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    problems = []
    visibility, needed = int(have.get("VisibilityTimeout", 0)), queues.VISIBILITY_PER_TIMEOUT * stage.timeout_seconds
    if visibility < needed:
        problems.append(
            f"visibility timeout {visibility}s is under six function timeouts ({needed}s): a message would come "
            "back while its conversion still runs"
        )
    redrive = json.loads(have.get("RedrivePolicy") or "{}")
    if redrive.get("deadLetterTargetArn") != names.queue_arn(names.dead_letter_queue):
        problems.append(f"no redrive policy to {names.dead_letter_queue}: a poison event would come back forever")
    elif int(redrive.get("maxReceiveCount", 0)) != ctx.limits.max_receives:
        problems.append(f"maxReceiveCount {redrive.get('maxReceiveCount')}, MAX_RECEIVES is {ctx.limits.max_receives}")
    policy = json.loads(have.get("Policy") or "{}")
    if not iam.service_may(
        policy,
        "s3.amazonaws.com",
        "sqs:SendMessage",
        names.queue_arn(names.event_queue),
        {"aws:SourceArn": f"arn:aws:s3:::{names.source_bucket}", "aws:SourceAccount": names.account},
    ):
        problems.append(f"its policy does not let S3 send s3://{names.source_bucket}'s events: they are dropped")
    if problems:
        return fail(f"{names.event_queue}: " + "; ".join(problems), fix)
    return ok(
        f"{names.event_queue}: visibility {visibility}s, to {names.dead_letter_queue} after "
        f"{ctx.limits.max_receives} deliveries, S3 may send to it"
    )


def dead_letters(ctx: Context) -> Check:
    names = ctx.names
    url = queues.queue_url(ctx.aws, names.dead_letter_queue)
    if url is None:
        return fail(f"queue {names.dead_letter_queue} does not exist", f"python -m app provision {ctx.stage.name}")
    attributes = ctx.aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    waiting = sum(int(v) for v in attributes.values())
    if waiting:
        return fail(
            f"{waiting} event(s) in {names.dead_letter_queue} failed every delivery: their uploads are not converted",
            f"see them on the dashboard's Dead letters page (or python -m app redrive {ctx.stage.name} --list), "
            f"fix the cause, then python -m app redrive {ctx.stage.name}",
        )
    return ok(f"{names.dead_letter_queue} is empty")


def mapping(ctx: Context) -> Check:
    names, limits = ctx.names, ctx.limits
    fix = f"python -m app provision {ctx.stage.name} (after zappa deploy: the mapping needs the function)"
    if ctx.function is None:
        return unknown(f"function {names.function} is not deployed", f"zappa deploy {ctx.stage.name}")
    found = queues.find_mapping(ctx.aws, names)
    if found is None:
        return fail(f"nothing consumes {names.event_queue}: uploads wait there unconverted", fix)
    problems = []
    if found.get("State") not in ("Enabled", "Enabling", "Creating", "Updating"):
        problems.append(f"it is {found.get('State')}")
    if queues.REPORT_FAILURES not in (found.get("FunctionResponseTypes") or []):
        problems.append("it does not report per-message failures: a failed message would be deleted as done")
    concurrency = (found.get("ScalingConfig") or {}).get("MaximumConcurrency")
    if concurrency != limits.maximum_concurrency:
        problems.append(f"maximum concurrency {concurrency}, MAXIMUM_CONCURRENCY is {limits.maximum_concurrency}")
    if found.get("BatchSize") != limits.event_batch_size:
        problems.append(f"batch size {found.get('BatchSize')}, EVENT_BATCH_SIZE is {limits.event_batch_size}")
    if problems:
        return fail(f"{names.event_queue} -> {names.function}: " + "; ".join(problems), fix)
    return ok(
        f"{names.event_queue} -> {names.function}: enabled, batches of {found['BatchSize']}, at most "
        f"{concurrency} at once, failures reported per message"
    )


def headroom(ctx: Context) -> Check:
    enough, text = queues.concurrency_headroom(ctx.aws, ctx.limits)
    if not enough:
        return fail(
            text,
            f"lower MAXIMUM_CONCURRENCY in the stage (then python -m app provision {ctx.stage.name}) or ask AWS "
            "for a higher Lambda concurrency quota",
        )
    return ok(text)


def alarm_check(ctx: Context) -> Check:
    expected = alarms.alarm_names(ctx.names)
    found = ctx.aws.client("cloudwatch").describe_alarms(AlarmNames=expected)["MetricAlarms"]
    missing = sorted(set(expected) - {a["AlarmName"] for a in found})
    if missing:
        return fail(f"missing alarm(s) {', '.join(missing)}", f"python -m app provision {ctx.stage.name}")
    notified = sorted({action for a in found for action in a.get("AlarmActions", [])})
    return ok(
        "dead letters, oldest event and failure rate alarms, "
        + (f"notifying {', '.join(notified)}" if notified else "notifying no one (provision --alarm-email ADDRESS)")
    )


CHECKS = {
    "event queue": event_queue,
    "dead letters": dead_letters,
    "event source mapping": mapping,
    "dashboard headroom": headroom,
    "alarms": alarm_check,
}
