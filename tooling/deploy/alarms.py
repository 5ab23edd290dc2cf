"""Alarms, so operators hear about trouble without watching the dashboard, and where they are sent.

Three alarms per stage: an event in the dead-letter queue (a job that failed
MAX_RECEIVES times), an event waiting in the queue for over an hour (conversions
stalled or starved), and conversions failing at more than 10% over 15 minutes
(the function's ``Failed`` and ``Done`` metrics, app/metrics.py). Each notifies
the SNS topic given to ``provision`` (``--alarm-topic``), or one it creates for
``--alarm-email``; without either they still show in the CloudWatch console.
"""

from __future__ import annotations

from typing import Any

from app import metrics
from tooling.deploy import documents
from tooling.deploy.aws import Aws
from tooling.deploy.changes import Change, updated_or_unchanged
from tooling.deploy.stage import OWNER_TAG, Names

OLDEST_EVENT_SECONDS = 3600
FAILURE_PERCENT = 10
COMPARED = ("ComparisonOperator", "Threshold", "EvaluationPeriods", "AlarmActions", "TreatMissingData")


def alarm_names(names: Names) -> list[str]:
    return [f"{names.function}-{suffix}" for suffix in ("dead-letters", "oldest-event", "failure-rate")]


def alarm_specs(names: Names, topic_arn: str | None) -> list[dict[str, Any]]:
    dead, oldest, failures = alarm_names(names)
    common = {
        "AlarmActions": [topic_arn] if topic_arn else [],
        "OKActions": [topic_arn] if topic_arn else [],
        "TreatMissingData": "notBreaching",
        "EvaluationPeriods": 1,
    }
    on_queue = {"Namespace": "AWS/SQS", "Statistic": "Maximum", "Period": 300}
    return [
        {
            **common,
            **on_queue,
            "AlarmName": dead,
            "AlarmDescription": f"an event failed every delivery and waits in {names.dead_letter_queue}: see the "
            "dashboard's dead letters, fix the cause, then python -m app redrive STAGE",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": names.dead_letter_queue}],
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": 1,
        },
        {
            **common,
            **on_queue,
            "AlarmName": oldest,
            "AlarmDescription": f"an upload has waited over {OLDEST_EVENT_SECONDS // 60} minutes in "
            f"{names.event_queue}: conversions are stalled, disabled or too few (MAXIMUM_CONCURRENCY)",
            "MetricName": "ApproximateAgeOfOldestMessage",
            "Dimensions": [{"Name": "QueueName", "Value": names.event_queue}],
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": OLDEST_EVENT_SECONDS,
        },
        {
            **common,
            "AlarmName": failures,
            "AlarmDescription": f"over {FAILURE_PERCENT}% of conversions failed in 15 minutes: see the dashboard's "
            "failed images",
            "Metrics": [
                _metric("failed", "Failed", names),
                _metric("done", "Done", names),
                {
                    "Id": "rate",
                    "Expression": "100 * FILL(failed, 0) / (FILL(failed, 0) + FILL(done, 0))",
                    "Label": "failed %",
                    "ReturnData": True,
                },
            ],
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": FAILURE_PERCENT,
        },
    ]


def ensure_topic(aws: Aws, names: Names, topic_arn: str | None, email: str | None, tags: dict[str, str]) -> str | None:
    """The topic alarms notify: the one given, else the stage's own when an address is given, else None."""
    if topic_arn:
        return topic_arn
    if not email:
        return None
    sns = aws.client("sns")
    arn = sns.create_topic(Name=names.alarm_topic, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["TopicArn"]
    subscribed = [
        s["Endpoint"]
        for s in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        if s["Protocol"] == "email"
    ]
    if email not in subscribed:
        sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=email)
    return arn


def ensure_alarms(aws: Aws, names: Names, topic_arn: str | None, tags: dict[str, str]) -> list[Change]:
    cloudwatch = aws.client("cloudwatch")
    changes = []
    for spec in alarm_specs(names, topic_arn):
        found = cloudwatch.describe_alarms(AlarmNames=[spec["AlarmName"]])["MetricAlarms"]
        detail = spec["AlarmDescription"].split(":")[0] + (f", notifying {topic_arn}" if topic_arn else "")
        wanted = {k: spec[k] for k in COMPARED}
        if found and documents.covers(found[0], wanted):
            changes.append(Change("unchanged", "alarm", spec["AlarmName"]))
            continue
        cloudwatch.put_metric_alarm(**spec, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        changes.append(
            Change("created", "alarm", spec["AlarmName"], detail)
            if not found
            else updated_or_unchanged("alarm", spec["AlarmName"], [k for k in COMPARED if found[0].get(k) != spec[k]])
        )
    return changes


def delete_alarms(aws: Aws, names: Names, owner: str) -> list[Change]:
    cloudwatch, changes = aws.client("cloudwatch"), []
    for name in alarm_names(names):
        found = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        if not found:
            changes.append(Change("absent", "alarm", name))
            continue
        tags = cloudwatch.list_tags_for_resource(ResourceARN=found[0]["AlarmArn"])["Tags"]
        if {t["Key"]: t["Value"] for t in tags}.get(OWNER_TAG) != owner:
            changes.append(Change("kept", "alarm", name, f"not created by provisioning (no {OWNER_TAG}={owner} tag)"))
            continue
        cloudwatch.delete_alarms(AlarmNames=[name])
        changes.append(Change("deleted", "alarm", name))
    sns = aws.client("sns")
    topic = names.arn("sns", names.alarm_topic)
    arns = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    if topic in arns:
        tags = {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=topic)["Tags"]}
        if tags.get(OWNER_TAG) == owner:
            sns.delete_topic(TopicArn=topic)
            changes.append(Change("deleted", "topic", names.alarm_topic))
    return changes


def _metric(id_: str, name: str, names: Names) -> dict[str, Any]:
    return {
        "Id": id_,
        "MetricStat": {
            "Metric": {
                "Namespace": metrics.NAMESPACE,
                "MetricName": name,
                "Dimensions": [{"Name": metrics.DIMENSION, "Value": names.source_bucket}],
            },
            "Period": 900,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }
