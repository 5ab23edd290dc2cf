"""S3 buckets: create one, or bring an existing one's access, policy, CORS and lifecycle to what it should be.

Every part is read first and written only when it differs. Public access is set
before the policy (a public policy is refused while BlockPublicPolicy is on, and
for a while after it was turned off); lifecycle rules other than ours are kept;
tear-down deletes only buckets that carry the stage's owner tag, and only empty
ones unless forced. The account's own Block Public Access overrides every
bucket's, so a public bucket is refused up front when it is on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from tooling.deploy.aws import Aws, error_code
from tooling.deploy.changes import Change, updated_or_unchanged
from tooling.deploy.documents import (
    ABORT_INCOMPLETE_UPLOADS,
    LIFECYCLE_RULE_PREFIX,
    covers,
)
from tooling.deploy.stage import OWNER_TAG, StageError

POLICY_RETRY_DELAYS = (1, 2, 4, 8, 16, 32)  # seconds between attempts to put a bucket policy
BLOCKS_PUBLIC_POLICIES = ("BlockPublicPolicy", "RestrictPublicBuckets")


@dataclass(frozen=True)
class BucketSpec:
    name: str
    role: str  # what it is for, printed when created
    public_access: dict[str, bool]
    cors: dict[str, Any] | None = None
    lifecycle: tuple[dict[str, Any], ...] = (ABORT_INCOMPLETE_UPLOADS,)


def ensure_bucket(aws: Aws, spec: BucketSpec, tags: dict[str, str]) -> Change:
    created = _create(aws, spec.name, tags)
    parts = [
        label
        for label, converge in (("public access", _public_access), ("CORS", _cors), ("lifecycle", _lifecycle))
        if converge(aws.s3, spec)
    ]
    if created:
        return Change("created", "bucket", spec.name, spec.role)
    return updated_or_unchanged("bucket", spec.name, parts)


def ensure_policy(
    aws: Aws, bucket: str, policy: dict[str, Any], detail: str, sleep: Callable[[float], None] = time.sleep
) -> Change:
    """The bucket's policy, after its public access (``ensure_bucket``): written only when it differs."""
    current = _read(lambda: json.loads(aws.s3.get_bucket_policy(Bucket=bucket)["Policy"]), "NoSuchBucketPolicy")
    if current == policy:
        return Change("unchanged", "bucket policy", bucket)
    put_policy(aws.s3, bucket, policy, sleep)
    return Change("created" if current is None else "updated", "bucket policy", bucket, detail)


def put_policy(s3: Any, bucket: str, policy: dict[str, Any], sleep: Callable[[float], None] = time.sleep) -> None:
    """Put a bucket policy, retrying AccessDenied with exponential backoff for about a minute: right after a
    bucket's Block Public Access was relaxed, S3 refuses a public policy for a while."""
    for delay in (*POLICY_RETRY_DELAYS, None):
        try:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
            return
        except ClientError as error:
            if error_code(error) != "AccessDenied":
                raise
            if delay is None:
                raise StageError(
                    f"S3 still refuses the policy of s3://{bucket} after {sum(POLICY_RETRY_DELAYS)} s (AccessDenied): "
                    "these credentials may lack s3:PutBucketPolicy, or an organisation-level Block Public Access or "
                    "SCP forbids public bucket policies (then provision --cloudfront: CloudFront serves the tiles "
                    "from a private bucket)"
                ) from None
        sleep(delay)


def account_blocks(aws: Aws) -> list[str]:
    """The account-level Block Public Access settings that deny a public bucket policy whatever the bucket says
    (GetBucketPolicyStatus does not show them)."""
    block = (
        _read(
            lambda: aws.client("s3control").get_public_access_block(AccountId=aws.account)[
                "PublicAccessBlockConfiguration"
            ],
            "NoSuchPublicAccessBlockConfiguration",
        )
        or {}
    )
    return [name for name in BLOCKS_PUBLIC_POLICIES if block.get(name)]


def account_blocks_fix(account: str, stage: str) -> str:
    return (
        f"python -m app provision {stage} --cloudfront (CloudFront serves the tiles from a private bucket under "
        "any Block Public Access), or allow public bucket policies in this account: aws s3control "
        f"put-public-access-block --account-id {account} --public-access-block-configuration "
        "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=false,RestrictPublicBuckets=false"
    )


def delete_bucket(aws: Aws, name: str, owner: str, force: bool) -> Change:
    if not name:
        return Change("absent", "bucket", "(not named in the stage)")
    try:
        tags = {t["Key"]: t["Value"] for t in aws.s3.get_bucket_tagging(Bucket=name)["TagSet"]}
    except ClientError as error:
        if error_code(error) == "NoSuchBucket":
            return Change("absent", "bucket", name)
        if error_code(error) != "NoSuchTagSet":
            raise
        tags = {}
    if tags.get(OWNER_TAG) != owner:
        return Change("kept", "bucket", name, f"not created by provisioning (no {OWNER_TAG}={owner} tag)")
    if not _is_empty(aws.s3, name):
        if not force:
            return Change("kept", "bucket", name, "not empty; --force deletes its objects too")
        _empty(aws.s3, name)
    aws.s3.delete_bucket(Bucket=name)
    return Change("deleted", "bucket", name)


def _create(aws: Aws, name: str, tags: dict[str, str]) -> bool:
    try:
        aws.s3.head_bucket(Bucket=name)
        return False
    except ClientError as error:
        if error_code(error) in ("403", "AccessDenied"):
            raise StageError(f"bucket {name} belongs to another account: choose another name") from None
        if error_code(error) not in ("404", "NoSuchBucket"):
            raise
    where = {} if aws.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": aws.region}}
    aws.s3.create_bucket(Bucket=name, **where)
    aws.s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
    return True


def _public_access(s3: Any, spec: BucketSpec) -> bool:
    current = _read(
        lambda: s3.get_public_access_block(Bucket=spec.name)["PublicAccessBlockConfiguration"],
        "NoSuchPublicAccessBlockConfiguration",
    )
    if current == spec.public_access:
        return False
    s3.put_public_access_block(Bucket=spec.name, PublicAccessBlockConfiguration=spec.public_access)
    return True


def _cors(s3: Any, spec: BucketSpec) -> bool:
    if spec.cors is None:
        return False
    current = _read(lambda: {"CORSRules": s3.get_bucket_cors(Bucket=spec.name)["CORSRules"]}, "NoSuchCORSConfiguration")
    if covers(current, spec.cors):
        return False
    s3.put_bucket_cors(Bucket=spec.name, CORSConfiguration=spec.cors)
    return True


def _lifecycle(s3: Any, spec: BucketSpec) -> bool:
    rules = (
        _read(lambda: s3.get_bucket_lifecycle_configuration(Bucket=spec.name)["Rules"], "NoSuchLifecycleConfiguration")
        or []
    )
    ours = {r["ID"]: _comparable(r) for r in rules if r.get("ID", "").startswith(LIFECYCLE_RULE_PREFIX)}
    if ours == {r["ID"]: _comparable(r) for r in spec.lifecycle}:
        return False
    others = [rule for rule in rules if not rule.get("ID", "").startswith(LIFECYCLE_RULE_PREFIX)]
    s3.put_bucket_lifecycle_configuration(
        Bucket=spec.name, LifecycleConfiguration={"Rules": [*others, *spec.lifecycle]}
    )
    return True


def _comparable(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule as it matters: S3 may answer an empty prefix as a missing one, a filter's prefix as a plain one."""
    prefix = rule.get("Prefix") or (rule.get("Filter") or {}).get("Prefix") or ""
    others = set(rule.get("Filter") or {}) - {"Prefix"}
    return {
        **{k: v for k, v in rule.items() if k not in ("Prefix", "Filter")},
        "prefix": prefix,
        "other filters": sorted(others),
    }


def _read(get: Any, missing: str) -> Any:
    """The current configuration, or None when the bucket has none."""
    try:
        return get()
    except ClientError as error:
        if error_code(error) == missing:
            return None
        raise


def _is_empty(s3: Any, name: str) -> bool:
    answer = s3.list_object_versions(Bucket=name, MaxKeys=1)
    return not answer.get("Versions") and not answer.get("DeleteMarkers")


def _empty(s3: Any, name: str) -> None:
    for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        objects = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(objects), 1000):
            s3.delete_objects(Bucket=name, Delete={"Objects": objects[start : start + 1000], "Quiet": True})
