"""The documents provisioning writes: bucket rules, IAM policies, the Batch job definition. Pure data.

Least privilege, concretely: the Lambda role reads and writes the three
buckets the way the handler and the dashboard do (presigned uploads and retries
write the source bucket) and alone may submit to the stage's queue; the Batch
job role reads the source and writes the outputs, nothing else; the execution
role only pulls the stage's image and writes its logs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.ids import PAGES_PREFIX
from app.iiif import serving
from tooling.deploy.stage import Names

JOB_DEFINITION_TEMPLATE = Path(__file__).resolve().parents[2] / "batch_fallback" / "jobdefinition.json"
BATCH_LOG_GROUP = "/aws/batch/job"  # where the awslogs driver writes when no group is named
LIFECYCLE_RULE_PREFIX = "tiler-"  # lifecycle rules whose ID starts so are provisioning's; others are kept
LIFECYCLE_RULE_ID = "tiler-abort-incomplete-uploads"
# The settings that shape what a conversion writes and publishes: a Batch job must convert exactly as the function
# does (and invalidate a replaced image's CDN paths as it does), so those the stage sets are copied into the job
# definition (the rest have the same defaults on both sides).
CONVERSION_SETTINGS = (
    "PUBLIC_BASE_URL",
    "TILE_SIZE",
    "JPEG_QUALITY",
    "MAX_PIXELS",
    "IIIF_MAX_SIZE",
    "ALLOWED_FORMATS",
    "FLATTEN_BACKGROUND",
    "SERVING_TIFF",
    "IIIF_MANIFESTS",
    "IIIF_VERSIONS",
    "IIIF_PRESENTATION_VERSIONS",
    "DERIVATIVES_FILE",
    "CDN_DISTRIBUTION_ID",
    "PDF_DPI",
    "MAX_PAGES",
)

TILES_CORS = {
    "CORSRules": [
        {
            "AllowedOrigins": ["*"],
            "AllowedMethods": ["GET", "HEAD"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag", "Content-Length"],
            "MaxAgeSeconds": 86400,
        }
    ]
}
UPLOAD_CORS = {
    "CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["POST"], "AllowedHeaders": ["*"], "MaxAgeSeconds": 3600}]
}  # the dashboard's presigned POST; the signature guards it
PRIVATE = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
PUBLIC_POLICY_ONLY = {**PRIVATE, "BlockPublicPolicy": False, "RestrictPublicBuckets": False}  # no ACLs, one policy
# Large outputs (the serving TIFF) go up in parts: aborting a failed multipart upload is part of writing.
WRITE_OUTPUTS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
# Under pages/ of the source bucket, a document's job writes one source per page and deletes an earlier version's,
# and a takedown deletes them all: on Lambda, or on AWS Batch when splitting takes longer. Nothing else is deleted.
WRITE_PAGES = ["s3:PutObject", "s3:DeleteObject"]
ABORT_INCOMPLETE_UPLOADS = {
    "ID": LIFECYCLE_RULE_ID,
    "Status": "Enabled",
    "Filter": {"Prefix": ""},
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}
# The dynamic endpoint's stored large answers (app/web/oversize.py): named by the image's version, so
# replaced images leave theirs behind; a month later nobody asks for them.
EXPIRE_CACHED_ANSWERS = {
    "ID": "tiler-expire-cached-answers",
    "Status": "Enabled",
    "Filter": {"Prefix": "cache/"},
    "Expiration": {"Days": 30},
}
# The dashboard's sign-in state (app/web/auth.py): sessions outlive no SESSION_HOURS, throttling counters no day.
EXPIRE_SIGN_IN_STATE = tuple(
    {
        "ID": f"tiler-expire-{prefix.rstrip('/')}",
        "Status": "Enabled",
        "Filter": {"Prefix": prefix},
        "Expiration": {"Days": days},
    }
    for prefix, days in (("sessions/", 2), ("signin/", 1))
)
SERVING_PREFIX = serving.PREFIX  # the serving TIFFs in the tiles bucket: full resolution, never public


# The function's role is assumed by Lambda to run it and by API Gateway to invoke it: Zappa's REST API
# (``apigateway_version`` v1, its default) gives every AWS_PROXY integration the function's role as ``Credentials``.
LAMBDA_TRUSTED = ("lambda.amazonaws.com", "apigateway.amazonaws.com")


def trust(*services: str) -> dict[str, Any]:
    principal = services[0] if len(services) == 1 else list(services)
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}],
    }


def cloudfront_read(bucket: str, distribution_arn: str, account: str) -> dict[str, Any]:
    """Only the stage's CloudFront distribution may read tiles (signed by its Origin Access Control), and the
    serving TIFFs stay private. The distribution may also list, only so that S3 answers a missing (withdrawn)
    tile 404 rather than 403; viewers cannot list through it: its only path that maps to the bucket itself,
    ``/``, is its default root object (``cdn.distribution_config``), and it forwards no query string."""
    only_ours = {"StringEquals": {"AWS:SourceArn": distribution_arn}}
    return _policy(
        {
            "Sid": "CloudFrontReadsTiles",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": only_ours,
        },
        _serving_tiffs_private(bucket, account),
        {
            "Sid": "CloudFrontSeesMissingTiles",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": only_ours,
        },
    )


def public_read(bucket: str, account: str) -> dict[str, Any]:
    """Anyone may read tiles (viewers on any site); nobody may list the bucket, and the serving TIFFs stay private."""
    return _policy(
        {
            "Sid": "PublicReadTiles",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        },
        _serving_tiffs_private(bucket, account),
    )


def _serving_tiffs_private(bucket: str, account: str) -> dict[str, Any]:
    """derivatives/ (the full-resolution serving TIFFs) is read only by the account's own roles (the function's
    dynamic endpoint, the Batch job): anonymous and service-principal requests carry no aws:PrincipalAccount,
    and a negated operator (StringNotEquals) on a key missing from the request is true, so they are denied; a
    principal of another account or service has a different value and is denied too. The IAM User Guide,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html:
    "If the policy condition requires that the key is not matched, such as StringNotLike or ArnNotLike, and the
    right key is not present, the condition is true"."""
    return {
        "Sid": "ServingTiffsStayPrivate",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/{SERVING_PREFIX}*",
        "Condition": {"StringNotEquals": {"aws:PrincipalAccount": account}},
    }


def lambda_policy(names: Names) -> dict[str, Any]:
    log_group = names.arn("logs", f"log-group:/aws/lambda/{names.function}")
    return _policy(
        # API Gateway, holding this role, invokes the function (and any alias or version Zappa points it at).
        _allow(["lambda:InvokeFunction"], [names.function_arn, f"{names.function_arn}:*"]),
        _allow(["s3:GetObject", "s3:PutObject"], f"arn:aws:s3:::{names.source_bucket}/*"),  # read, copy in place
        _allow(WRITE_PAGES, f"arn:aws:s3:::{names.source_bucket}/{PAGES_PREFIX}*"),
        _allow(WRITE_OUTPUTS, f"arn:aws:s3:::{names.tiles_bucket}/*"),
        _allow(WRITE_OUTPUTS, f"arn:aws:s3:::{names.metadata_bucket}/*"),
        _allow(["s3:ListBucket"], [f"arn:aws:s3:::{b}" for b in names.buckets]),  # 404, not 403, for a gone source
        _allow(
            ["batch:SubmitJob"],
            [
                names.arn("batch", f"job-queue/{names.job_queue}"),
                names.arn("batch", f"job-definition/{names.job_definition}"),
                names.arn("batch", f"job-definition/{names.job_definition}:*"),
            ],
        ),
        _allow(["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], [log_group, f"{log_group}:*"]),
        # The event source mapping receives and deletes as the function's role; the handler delays a failed
        # message's return, the sweep sends stuck jobs again, the dashboard lists and re-drives the dead letters.
        _allow(EVENT_QUEUE_ACTIONS, names.queue_arn(names.event_queue)),
        _allow(DEAD_LETTER_ACTIONS, names.queue_arn(names.dead_letter_queue)),
        *_invalidations(names),
    )


EVENT_QUEUE_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:SendMessage",
]
DEAD_LETTER_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
]


def queue_policy(names: Names) -> dict[str, Any]:
    """Only S3, for the stage's source bucket in this account, may send to the event queue (the function's role
    sends through its own identity policy)."""
    return _policy(
        {
            "Sid": "SourceBucketEvents",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": names.queue_arn(names.event_queue),
            "Condition": {
                "ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{names.source_bucket}"},
                "StringEquals": {"aws:SourceAccount": names.account},
            },
        }
    )


def job_policy(names: Names) -> dict[str, Any]:
    return _policy(
        _allow(["s3:GetObject"], f"arn:aws:s3:::{names.source_bucket}/*"),
        _allow(WRITE_PAGES, f"arn:aws:s3:::{names.source_bucket}/{PAGES_PREFIX}*"),
        _allow(WRITE_OUTPUTS, f"arn:aws:s3:::{names.tiles_bucket}/*"),
        _allow(WRITE_OUTPUTS, f"arn:aws:s3:::{names.metadata_bucket}/*"),
        _allow(["s3:ListBucket"], [f"arn:aws:s3:::{b}" for b in names.buckets]),
        *_invalidations(names),
    )


def _invalidations(names: Names) -> list[dict[str, Any]]:
    """A job that replaced an image invalidates its paths in the stage's distribution, and in no other."""
    return [_allow(["cloudfront:CreateInvalidation"], names.distribution_arn)] if names.distribution_id else []


def execution_policy(names: Names) -> dict[str, Any]:
    log_group = names.arn("logs", f"log-group:{BATCH_LOG_GROUP}")
    return _policy(
        _allow(["ecr:GetAuthorizationToken"], "*"),  # the one ECR action that takes no resource
        _allow(
            ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
            names.arn("ecr", f"repository/{names.repository}"),
        ),
        _allow(["logs:CreateLogStream", "logs:PutLogEvents"], [log_group, f"{log_group}:*"]),
    )


def repository_lifecycle() -> dict[str, Any]:
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep the last 10 untagged images",
                "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 10},
                "action": {"type": "expire"},
            }
        ]
    }


def job_definition(
    names: Names,
    tags: dict[str, str],
    stage_environment: Mapping[str, str],
    image: str,
    template: Path = JOB_DEFINITION_TEMPLATE,
) -> dict[str, Any]:
    """batch_fallback/jobdefinition.json with this stage's name, pinned image, roles, buckets and conversion settings.

    The ``tiler:spec`` tag is a digest of everything else: a new revision is
    registered only when the digest changes, which is what makes re-runs no-ops.
    """
    spec = copy.deepcopy(json.loads(template.read_text()))
    spec["jobDefinitionName"] = names.job_definition
    container = spec["containerProperties"]
    container["image"] = image
    container["jobRoleArn"] = names.role_arn(names.job_role)
    container["executionRoleArn"] = names.role_arn(names.execution_role)
    values = {
        "SOURCE_BUCKET": names.source_bucket,
        "TILES_BUCKET": names.tiles_bucket,
        "METADATA_BUCKET": names.metadata_bucket,
        "PUBLIC_BASE_URL": names.public_base_url,
        **conversion_settings(stage_environment),
    }
    template_values = {v["name"]: v["value"] for v in container.get("environment", [])}
    container["environment"] = [{"name": name, "value": value} for name, value in {**template_values, **values}.items()]
    spec["tags"] = {**spec.get("tags", {}), **tags}
    spec["tags"]["tiler:spec"] = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return spec


def conversion_settings(environment: Mapping[str, str]) -> dict[str, str]:
    """The CONVERSION_SETTINGS that ``environment`` sets."""
    return {name: environment[name] for name in CONVERSION_SETTINGS if name in environment}


def job_resources(template: Path = JOB_DEFINITION_TEMPLATE) -> dict[str, str]:
    """BATCH_VCPUS and BATCH_MEMORY_MB for the cost figures, from the job definition's own template."""
    spec = json.loads(template.read_text())
    found = {r["type"]: r["value"] for r in spec["containerProperties"].get("resourceRequirements", [])}
    return {"BATCH_VCPUS": found.get("VCPU", "4"), "BATCH_MEMORY_MB": found.get("MEMORY", "16384")}


def covers(actual: Any, desired: Any) -> bool:
    """True when ``actual`` has everything ``desired`` says (AWS adds defaults of its own to what it returns)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(k in actual and covers(actual[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(actual, list) and len(actual) == len(desired) and all(map(covers, actual, desired))
    return actual == desired


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(actions: list[str], resources: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}
