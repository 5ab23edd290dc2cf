"""``python -m app provision STAGE``: create or update everything Zappa does not, then write the names into the stage.

boto3, not a CloudFormation template: each resource is read, compared and
written only when it differs, and the line it prints says which. The doctor
reads the same APIs, and the whole cycle runs in tests against moto, whose
CloudFormation does not apply bucket CORS, public access blocks or lifecycle
rules. The stage then gets its bucket names, queue, job definition and
``role_arn`` with ``manage_roles: false``, so ``zappa deploy`` uses the
least-privilege role instead of creating its own broad one (Zappa 0.63 reads
``role_arn``; its ``role_name`` setting is accepted but never used).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.deploy import documents
from app.deploy.aws import Aws
from app.deploy.batch import Network, ensure_compute_environment, ensure_job_definition, ensure_job_queue
from app.deploy.buckets import BucketSpec, ensure_bucket
from app.deploy.changes import Change
from app.deploy.registry import ensure_repository
from app.deploy.roles import ensure_batch_service_role, ensure_role
from app.deploy.stage import S3_EVENT_FUNCTION, Names, Stage, derived_names, write_stage


@dataclass(frozen=True)
class Options:
    source_bucket: str | None = None
    tiles_bucket: str | None = None
    metadata_bucket: str | None = None
    public_base_url: str | None = None  # e.g. a CDN in front of the tiles bucket
    max_vcpus: int = 16
    network: Network | None = None  # default: the default VPC's subnets and security group


def provision(stage: Stage, options: Options, aws: Aws | None = None,
              out: Callable[[str], None] = print) -> list[Change]:
    aws = aws or Aws(stage.region)
    kept = _kept_choices(stage)
    names = derived_names(stage, aws.account, source_bucket=options.source_bucket or kept.get("SOURCE_BUCKET"),
                          tiles_bucket=options.tiles_bucket or kept.get("TILES_BUCKET"),
                          metadata_bucket=options.metadata_bucket or kept.get("METADATA_BUCKET"))
    out(f"Provisioning stage {stage.name} (function {names.function}) in {aws.region}, account {aws.account}")
    changes: list[Change] = []

    def step(change: Change) -> None:
        changes.append(change)
        out(change.line())

    tags = stage.tags
    for spec in bucket_specs(names):
        step(ensure_bucket(aws, spec, tags))
    step(ensure_repository(aws, names.repository, tags))
    step(ensure_role(aws, names.lambda_role, documents.LAMBDA_TRUSTED, documents.lambda_policy(names), tags))
    step(ensure_role(aws, names.job_role, ("ecs-tasks.amazonaws.com",), documents.job_policy(names), tags))
    step(ensure_role(aws, names.execution_role, ("ecs-tasks.amazonaws.com",), documents.execution_policy(names), tags))
    environment, environment_arn = ensure_compute_environment(
        aws, names.compute_environment, ensure_batch_service_role(aws), options.max_vcpus, options.network, tags)
    step(environment)
    step(ensure_job_queue(aws, names.job_queue, environment_arn, tags))
    public_url = options.public_base_url or kept.get("PUBLIC_BASE_URL") or names.public_base_url
    spec = documents.job_definition(names, tags, {**stage.environment, "PUBLIC_BASE_URL": public_url})
    step(ensure_job_definition(aws, spec))

    values = stage_values(stage, names, spec, public_url)
    wrote = write_stage(stage, values, drop=("extra_permissions",))
    out(f"{'updated' if wrote else 'unchanged':<9} stage {stage.name} in {stage.path}: "
        + ", ".join(f"{k}={v}" for k, v in values["environment_variables"].items() if k in _WRITTEN_ENV)
        + f", role_arn={values['role_arn']}, manage_roles=false, s3_bucket={names.deploy_bucket}")
    out(f"Next: scripts/push_batch_image.sh {stage.name}, then zappa deploy {stage.name} --docker-image-uri URI "
        f"(the URI it prints), then python -m app doctor {stage.name}")
    return changes


_WRITTEN_ENV = ("SOURCE_BUCKET", "TILES_BUCKET", "METADATA_BUCKET", "PUBLIC_BASE_URL", "BATCH_JOB_QUEUE",
                "BATCH_JOB_DEFINITION")


def bucket_specs(names: Names) -> list[BucketSpec]:
    aborts = "incomplete multipart uploads aborted after 1 day"
    return [
        BucketSpec(names.source_bucket, f"source, private, CORS POST for the dashboard's uploads, {aborts}",
                   documents.PRIVATE, cors=documents.UPLOAD_CORS),
        BucketSpec(names.tiles_bucket, f"tiles, public-read, CORS GET/HEAD from any origin, {aborts}",
                   documents.PUBLIC_POLICY_ONLY, cors=documents.TILES_CORS,
                   policy=documents.public_read(names.tiles_bucket)),
        BucketSpec(names.metadata_bucket, f"metadata, private, {aborts}", documents.PRIVATE),
        BucketSpec(names.deploy_bucket, f"Zappa's deployment packages, private, {aborts}", documents.PRIVATE),
    ]


def stage_values(stage: Stage, names: Names, spec: dict[str, Any], public_url: str) -> dict[str, Any]:
    """What the stage must say for ``zappa deploy``: the names, the S3 event's bucket, the role."""
    environment = {**stage.environment, "SOURCE_BUCKET": names.source_bucket, "TILES_BUCKET": names.tiles_bucket,
                   "METADATA_BUCKET": names.metadata_bucket, "PUBLIC_BASE_URL": public_url,
                   "BATCH_JOB_QUEUE": names.job_queue, "BATCH_JOB_DEFINITION": names.job_definition,
                   **documents.job_resources(spec)}
    source_arn = f"arn:aws:s3:::{names.source_bucket}"
    events = [dict(event) for event in stage.settings.get("events") or []]
    ours = [event for event in events if event.get("function") == S3_EVENT_FUNCTION]
    for event in ours:
        event["event_source"] = {**event.get("event_source", {}), "arn": source_arn}
    if not ours:
        events.append({"function": S3_EVENT_FUNCTION,
                       "event_source": {"arn": source_arn, "events": ["s3:ObjectCreated:*"]}})
    return {"environment_variables": environment, "events": events, "role_arn": names.role_arn(names.lambda_role),
            "manage_roles": False, "s3_bucket": names.deploy_bucket}


def _kept_choices(stage: Stage) -> dict[str, str]:
    """A stage provisioned before (its role is ours) keeps its bucket names and public URL on re-runs."""
    ours = str(stage.settings.get("role_arn", "")).endswith(f":role/{stage.function_name}-lambda")
    return stage.environment if ours else {}
