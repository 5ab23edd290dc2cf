"""``python -m app provision STAGE``: create or update everything Zappa does not, then write the names into the stage.

boto3, not a CloudFormation template: each resource is read, compared and
written only when it differs, and the line it prints says which. The doctor
reads the same APIs, and the whole cycle runs in tests against moto, whose
CloudFormation does not apply bucket CORS, public access blocks or lifecycle
rules. The stage then gets its bucket names, queue, job definition and
``role_arn`` with ``manage_roles: false``, so ``zappa deploy`` uses the
least-privilege role instead of creating its own broad one (Zappa 0.63 reads
``role_arn``; its ``role_name`` setting is accepted but never used). Viewers
read the tiles through CloudFront from a private bucket, which works under any
account's Block Public Access; ``--public-bucket`` serves the bucket itself
where the account allows public bucket policies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tooling.deploy import cdn, documents, images
from tooling.deploy.aws import Aws
from tooling.deploy.batch import (
    Network,
    ensure_compute_environment,
    ensure_job_definition,
    ensure_job_queue,
    newest_job_definition,
)
from tooling.deploy.buckets import (
    BucketSpec,
    account_blocks,
    account_blocks_fix,
    ensure_bucket,
    ensure_policy,
)
from tooling.deploy.changes import Change
from tooling.deploy.registry import ensure_repository
from tooling.deploy.roles import ensure_batch_service_role, ensure_role
from tooling.deploy.stage import (
    S3_EVENT_FUNCTION,
    Names,
    Stage,
    StageError,
    derived_names,
    write_stage,
)


@dataclass(frozen=True)
class Options:
    source_bucket: str | None = None
    tiles_bucket: str | None = None
    metadata_bucket: str | None = None
    public_base_url: str | None = None  # with a public bucket: e.g. a CDN of one's own in front of it
    max_vcpus: int = 16
    network: Network | None = None  # default: the default VPC's subnets and security group
    image: str | None = None  # REPO:git-COMMIT or REPO@sha256:..., as pushed; default: the job definition's current one
    public_bucket: bool | None = None  # None: as the stage was (a new stage: CloudFront, the bucket private)
    domain: str | None = None  # the distribution's custom domain (None: keep what it has)
    certificate_arn: str | None = None  # ACM certificate in us-east-1 covering ``domain``


def provision(
    stage: Stage, options: Options, aws: Aws | None = None, out: Callable[[str], None] = print
) -> list[Change]:
    aws = aws or Aws(stage.region)
    kept = _kept_choices(stage)
    names = derived_names(
        stage,
        aws.account,
        source_bucket=options.source_bucket or kept.get("SOURCE_BUCKET"),
        tiles_bucket=options.tiles_bucket or kept.get("TILES_BUCKET"),
        metadata_bucket=options.metadata_bucket or kept.get("METADATA_BUCKET"),
    )
    public = _public_bucket(options, kept)
    _check(options, public)
    blocking = account_blocks(aws) if public else []
    if blocking:
        raise StageError(
            f"account {aws.account} blocks public bucket policies ({', '.join(blocking)}), whatever "
            f"the tiles bucket says: {account_blocks_fix(aws.account, stage.name)}"
        )
    out(f"Provisioning stage {stage.name} (function {names.function}) in {aws.region}, account {aws.account}")
    changes: list[Change] = []

    def step(change: Change) -> None:
        changes.append(change)
        out(change.line())

    tags = stage.tags
    for spec in bucket_specs(names, public):
        step(ensure_bucket(aws, spec, tags))
    if public:  # at the URL it had, unless that was a distribution's
        had = None if kept.get("CDN_DISTRIBUTION_ID") else kept.get("PUBLIC_BASE_URL")
        public_url = options.public_base_url or had or names.public_base_url
        policy, detail = documents.public_read(names.tiles_bucket, aws.account), "public-read, derivatives/ private"
    else:
        change, oac = cdn.ensure_origin_access_control(aws, names.function)
        step(change)
        change, distribution = cdn.ensure_distribution(aws, names, oac, options.domain, options.certificate_arn, tags)
        step(change)
        if distribution.url != f"https://{distribution.domain_name}":
            out(
                f"DNS: {distribution.url.removeprefix('https://')} must point at {distribution.domain_name} (a CNAME, "
                "or a Route 53 alias record)"
            )
        names, public_url = replace(names, distribution_id=distribution.id), distribution.url
        policy = documents.cloudfront_read(names.tiles_bucket, distribution.arn, aws.account)
        detail = f"read only by distribution {distribution.id}, derivatives/ private"
    step(ensure_policy(aws, names.tiles_bucket, policy, detail))
    values = stage_values(stage, names, public_url)
    step(ensure_repository(aws, names.repository, tags))
    step(ensure_role(aws, names.lambda_role, documents.LAMBDA_TRUSTED, documents.lambda_policy(names), tags))
    step(ensure_role(aws, names.job_role, ("ecs-tasks.amazonaws.com",), documents.job_policy(names), tags))
    step(ensure_role(aws, names.execution_role, ("ecs-tasks.amazonaws.com",), documents.execution_policy(names), tags))
    environment, environment_arn = ensure_compute_environment(
        aws, names.compute_environment, ensure_batch_service_role(aws), options.max_vcpus, options.network, tags
    )
    step(environment)
    step(ensure_job_queue(aws, names.job_queue, environment_arn, tags))
    image = options.image or current_image(aws, names)
    if image:
        checked = str(images.checked_image(aws, names, image, stage.name))
        step(
            ensure_job_definition(aws, documents.job_definition(names, tags, values["environment_variables"], checked))
        )
    else:
        step(
            Change(
                "skipped",
                "job definition",
                names.job_definition,
                f"no image yet: scripts/push_batch_image.sh {stage.name} pushes one and registers it",
            )
        )

    wrote = write_stage(stage, values, drop=("extra_permissions",))
    out(
        f"{'updated' if wrote else 'unchanged':<9} stage {stage.name} in {stage.path}: "
        + ", ".join(f"{k}={v}" for k, v in values["environment_variables"].items() if k in _WRITTEN_ENV)
        + f", role_arn={values['role_arn']}, manage_roles=false, s3_bucket={names.deploy_bucket}"
    )
    deploy = f"zappa deploy {stage.name} --docker-image-uri " + (
        f"{options.image} (or zappa update)" if options.image else "URI (the URI it prints; later zappa update)"
    )
    out(
        "Next: "
        + (
            ""
            if options.image
            else f"scripts/push_batch_image.sh {stage.name} (builds, pushes, registers the image with Batch), then "
        )
        + f"{deploy}, then python -m app doctor {stage.name}"
    )
    return changes


_WRITTEN_ENV = (
    "SOURCE_BUCKET",
    "TILES_BUCKET",
    "METADATA_BUCKET",
    "PUBLIC_BASE_URL",
    "CDN_DISTRIBUTION_ID",
    "BATCH_JOB_QUEUE",
    "BATCH_JOB_DEFINITION",
)


def bucket_specs(names: Names, public: bool) -> list[BucketSpec]:
    aborts = "incomplete multipart uploads aborted after 1 day"
    return [
        BucketSpec(
            names.source_bucket,
            f"source, private, CORS POST for the dashboard's uploads, {aborts}",
            documents.PRIVATE,
            cors=documents.UPLOAD_CORS,
        ),
        BucketSpec(
            names.tiles_bucket,
            f"tiles, {'public-read' if public else 'private, read through CloudFront'}, "
            f"CORS GET/HEAD from any origin, {aborts}, cache/ expired after 30 days",
            documents.PUBLIC_POLICY_ONLY if public else documents.PRIVATE,
            cors=documents.TILES_CORS,
            lifecycle=(documents.ABORT_INCOMPLETE_UPLOADS, documents.EXPIRE_CACHED_ANSWERS),
        ),
        BucketSpec(
            names.metadata_bucket,
            f"metadata, private, {aborts}, sign-in sessions and counters expired after 2 and 1 days",
            documents.PRIVATE,
            lifecycle=(documents.ABORT_INCOMPLETE_UPLOADS, *documents.EXPIRE_SIGN_IN_STATE),
        ),
        BucketSpec(names.deploy_bucket, f"Zappa's deployment packages, private, {aborts}", documents.PRIVATE),
    ]


def stage_values(stage: Stage, names: Names, public_url: str) -> dict[str, Any]:
    """What the stage must say for ``zappa deploy``: the names, the S3 event's bucket, the role."""
    environment = {
        **stage.environment,
        "SOURCE_BUCKET": names.source_bucket,
        "TILES_BUCKET": names.tiles_bucket,
        "METADATA_BUCKET": names.metadata_bucket,
        "PUBLIC_BASE_URL": public_url,
        "CDN_DISTRIBUTION_ID": names.distribution_id,
        "BATCH_JOB_QUEUE": names.job_queue,
        "BATCH_JOB_DEFINITION": names.job_definition,
        **documents.job_resources(),
    }
    if not names.distribution_id:  # a public bucket: no CDN paths to invalidate
        del environment["CDN_DISTRIBUTION_ID"]
    source_arn = f"arn:aws:s3:::{names.source_bucket}"
    events = [dict(event) for event in stage.settings.get("events") or []]
    ours = [event for event in events if event.get("function") == S3_EVENT_FUNCTION]
    for event in ours:
        event["event_source"] = {**event.get("event_source", {}), "arn": source_arn}
    if not ours:
        events.append(
            {
                "function": S3_EVENT_FUNCTION,
                "event_source": {"arn": source_arn, "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]},
            }
        )
    return {
        "environment_variables": environment,
        "events": events,
        "role_arn": names.role_arn(names.lambda_role),
        "manage_roles": False,
        "s3_bucket": names.deploy_bucket,
    }


def current_image(aws: Aws, names: Names) -> str | None:
    """The image the stage's newest job definition runs, unless it is the unpinned kind of earlier versions."""
    latest = newest_job_definition(aws, names.job_definition)
    image = latest["containerProperties"]["image"] if latest else None
    return None if image is None or images.ImageName.parse(image).tag in images.MUTABLE_TAGS else image


def _public_bucket(options: Options, kept: dict[str, str]) -> bool:
    """--public-bucket or --cloudfront, else as before: a stage provisioned without a distribution keeps its public
    bucket (published descriptors and manifests name its URL); a new stage gets CloudFront."""
    if options.public_bucket is not None:
        return options.public_bucket
    return bool(kept) and not kept.get("CDN_DISTRIBUTION_ID")


def _check(options: Options, public: bool) -> None:
    if public and (options.domain or options.certificate_arn):
        raise StageError(
            "--domain and --certificate-arn are CloudFront's: a public bucket is served at its own URL "
            "(or --public-base-url, a CDN of your own)"
        )
    if not public and options.public_base_url:
        raise StageError(
            "--public-base-url goes with --public-bucket: CloudFront serves the tiles at its own domain or --domain"
        )
    if options.domain and not options.certificate_arn:
        raise StageError("--domain needs --certificate-arn: an ACM certificate in us-east-1 that covers it")
    if options.certificate_arn and not options.certificate_arn.startswith("arn:aws:acm:us-east-1:"):
        raise StageError(
            "--certificate-arn must be an ACM certificate in us-east-1, the only region CloudFront "
            "reads certificates from"
        )


def _kept_choices(stage: Stage) -> dict[str, str]:
    """A stage provisioned before (its role is ours) keeps its bucket names and public URL on re-runs."""
    ours = str(stage.settings.get("role_arn", "")).endswith(f":role/{stage.function_name}-lambda")
    return stage.environment if ours else {}
