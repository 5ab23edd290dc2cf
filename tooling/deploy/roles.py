"""IAM roles: one trusted service and one inline policy each, nothing else attached.

The roles are named after the stage and belong to it, so provisioning removes
any other inline or attached policy it finds on them: a role that gained a
permission by hand is no longer least-privilege.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from tooling.deploy.aws import Aws, error_code
from tooling.deploy.changes import Change, updated_or_unchanged
from tooling.deploy.documents import trust
from tooling.deploy.iam import document
from tooling.deploy.stage import OWNER_TAG

POLICY_NAME = "tiler"


def ensure_role(aws: Aws, name: str, services: tuple[str, ...], policy: dict[str, Any], tags: dict[str, str]) -> Change:
    role, trusted = _get(aws, name), trust(*services)
    parts = []
    if role is None:
        aws.iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trusted),
            Description=f"tiler: assumed by {' and '.join(services)}",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    elif document(role["AssumeRolePolicyDocument"]) != trusted:
        aws.iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trusted))
        parts.append("trust")
    if _inline(aws, name, POLICY_NAME) != policy:
        aws.iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
        parts.append("policy")
    parts += _remove_extra_policies(aws, name)
    if role is None:
        return Change("created", "role", name, f"assumed by {' and '.join(services)}")
    return updated_or_unchanged("role", name, parts)


def delete_role(aws: Aws, name: str, owner: str) -> Change:
    role = _get(aws, name)
    if role is None:
        return Change("absent", "role", name)
    if {t["Key"]: t["Value"] for t in role.get("Tags", [])}.get(OWNER_TAG) != owner:
        return Change("kept", "role", name, f"not created by provisioning (no {OWNER_TAG}={owner} tag)")
    for policy in aws.iam.list_role_policies(RoleName=name)["PolicyNames"]:
        aws.iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for attached in aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        aws.iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
    aws.iam.delete_role(RoleName=name)
    return Change("deleted", "role", name)


def ensure_batch_service_role(aws: Aws) -> str:
    """The ARN of AWS Batch's service-linked role, created if this account has none yet."""
    prefix = "/aws-service-role/batch.amazonaws.com/"
    found = aws.iam.list_roles(PathPrefix=prefix)["Roles"]
    if found:
        return found[0]["Arn"]
    return aws.iam.create_service_linked_role(AWSServiceName="batch.amazonaws.com")["Role"]["Arn"]


def _remove_extra_policies(aws: Aws, name: str) -> list[str]:
    removed = []
    for policy in aws.iam.list_role_policies(RoleName=name)["PolicyNames"]:
        if policy != POLICY_NAME:
            aws.iam.delete_role_policy(RoleName=name, PolicyName=policy)
            removed.append(f"removed inline policy {policy}")
    for attached in aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        aws.iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        removed.append(f"detached {attached['PolicyArn']}")
    return removed


def _get(aws: Aws, name: str) -> dict[str, Any] | None:
    try:
        return aws.iam.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return None
        raise


def _inline(aws: Aws, role: str, policy: str) -> dict[str, Any] | None:
    try:
        return document(aws.iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"])
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return None
        raise
