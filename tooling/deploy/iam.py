"""Reading IAM documents the way AWS evaluates them, for the cases deployment code must prove.

Enough of the evaluation logic to answer "may this principal do this": an
explicit Deny wins, then any Allow whose action and resource patterns match.
An Allow with a Condition is not counted, since whether it applies depends on
the request: a check built on it must not pass on a guess.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from tooling.deploy.aws import Aws, error_code


def trusts(trust_policy: dict[str, Any], service: str) -> bool:
    """True when the role's trust policy lets ``service`` assume it unconditionally."""
    return any(
        statement.get("Effect") == "Allow"
        and not statement.get("Condition")
        and _matches(statement.get("Action"), "sts:AssumeRole", fold=True)
        and service in _listed((statement.get("Principal") or {}).get("Service"))
        for statement in trust_policy.get("Statement", [])
    )


def allows(policies: Iterable[dict[str, Any]], action: str, resource: str) -> bool:
    """True when identity ``policies`` allow ``action`` on ``resource`` and none denies it."""
    statements = [s for policy in policies for s in _listed(policy.get("Statement"))]
    applies = [
        s for s in statements if _matches(s.get("Action"), action, fold=True) and _matches(s.get("Resource"), resource)
    ]
    if any(s.get("Effect") == "Deny" for s in applies):
        return False
    return any(s.get("Effect") == "Allow" and not s.get("Condition") for s in applies)


def service_may(
    resource_policy: dict[str, Any], service: str, action: str, resource: str, context: dict[str, str]
) -> bool:
    """True when a resource policy lets ``service`` do ``action`` on ``resource`` for a request carrying the
    condition keys ``context`` (e.g. aws:SourceArn), and nothing denies it. Only the condition operators this
    project writes are understood (String/Arn Equals and Like); any other makes the statement not count."""

    def applies(statement: dict[str, Any]) -> bool:
        principal = statement.get("Principal")
        services = _listed(principal.get("Service")) if isinstance(principal, dict) else [principal]
        return (
            (service in services or "*" in services)
            and _matches(statement.get("Action"), action, fold=True)
            and _matches(statement.get("Resource"), resource)
            and _conditions_hold(statement.get("Condition") or {}, context)
        )

    statements = [s for s in _listed(resource_policy.get("Statement")) if applies(s)]
    return not any(s.get("Effect") == "Deny" for s in statements) and any(
        s.get("Effect") == "Allow" for s in statements
    )


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    keys = {k.lower(): v for k, v in context.items()}
    for operator, tests in conditions.items():
        for key, wanted in tests.items():
            value = keys.get(key.lower())
            if value is None:
                return False
            if operator in ("StringEquals", "ArnEquals"):
                if value not in _listed(wanted):
                    return False
            elif operator in ("StringLike", "ArnLike"):
                if not _matches(wanted, value):
                    return False
            else:
                return False
    return True


def role_documents(aws: Aws, role_arn: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(trust policy, identity policies) of a role: its inline and attached policies; None when it does not exist."""
    name = role_arn.rsplit("/", 1)[-1]
    try:
        role = aws.iam.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return None
        raise
    inline = [
        document(aws.iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"])
        for policy in aws.iam.list_role_policies(RoleName=name)["PolicyNames"]
    ]
    attached = []
    for policy in aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        version = aws.iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
        attached.append(
            document(
                aws.iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)["PolicyVersion"][
                    "Document"
                ]
            )
        )
    return document(role["AssumeRolePolicyDocument"]), inline + attached


def _matches(patterns: Any, value: str, fold: bool = False) -> bool:
    """IAM's wildcards, ``*`` and ``?``; ``fold`` for actions, which IAM compares case-insensitively."""

    def norm(text: str) -> str:
        return text.lower() if fold else text

    return any(fnmatch.fnmatchcase(norm(value), norm(pattern)) for pattern in _listed(patterns))


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def document(value: str | dict[str, Any]) -> dict[str, Any]:
    """botocore decodes IAM's URL-encoded policy documents; accept a string too."""
    return json.loads(value) if isinstance(value, str) else value
