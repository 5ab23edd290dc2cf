"""AWS Batch: a Fargate compute environment that scales to zero, its job queue, the job definition.

Fargate has no minimum capacity and no instances to manage: an idle stage costs
nothing. Batch applies changes asynchronously, so each step waits for the
resource to settle before the next one refers to it. A job definition cannot be
updated, only given a new revision, so a digest of its document (a tag) decides
whether one is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tooling.deploy.aws import Aws, wait_for
from tooling.deploy.changes import Change, updated_or_unchanged
from tooling.deploy.stage import OWNER_TAG, Names, StageError

SETTLING = ("CREATING", "UPDATING", "DELETING")


@dataclass(frozen=True)
class Network:
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]


def default_network(aws: Aws) -> Network:
    """The default VPC's default subnets and security group (jobs reach S3 and ECR with a public IP)."""
    ec2 = aws.client("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise StageError("this region has no default VPC: pass --subnets and --security-groups")
    vpc = [{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}]
    subnets = ec2.describe_subnets(Filters=[*vpc, {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    default_group = [*vpc, {"Name": "group-name", "Values": ["default"]}]
    groups = ec2.describe_security_groups(Filters=default_group)["SecurityGroups"]
    return Network(tuple(sorted(s["SubnetId"] for s in subnets)), tuple(g["GroupId"] for g in groups))


def ensure_compute_environment(
    aws: Aws, name: str, service_role: str, max_vcpus: int, network: Network | None, tags: dict[str, str]
) -> tuple[Change, str]:
    found = _compute_environment(aws, name)
    if found is None:
        network = network or default_network(aws)
        arn = aws.batch.create_compute_environment(
            computeEnvironmentName=name,
            type="MANAGED",
            state="ENABLED",
            serviceRole=service_role,
            tags=tags,
            computeResources={
                "type": "FARGATE",
                "maxvCpus": max_vcpus,
                "subnets": list(network.subnets),
                "securityGroupIds": list(network.security_groups),
            },
        )["computeEnvironmentArn"]
        _settle(aws, name)
        return Change("created", "compute environment", name, f"Fargate, 0 to {max_vcpus} vCPUs"), arn
    resources, parts = found["computeResources"], []
    if resources.get("type") != "FARGATE":
        raise StageError(f"compute environment {name} is {resources.get('type')}, not FARGATE: tear it down first")
    update: dict[str, Any] = {}
    if resources.get("maxvCpus") != max_vcpus:
        update["maxvCpus"] = max_vcpus
    if network and (sorted(resources.get("subnets", [])), sorted(resources.get("securityGroupIds", []))) != (
        sorted(network.subnets),
        sorted(network.security_groups),
    ):
        update.update(subnets=list(network.subnets), securityGroupIds=list(network.security_groups))
    if update or found["state"] != "ENABLED":
        aws.batch.update_compute_environment(
            computeEnvironment=name, state="ENABLED", **({"computeResources": update} if update else {})
        )
        parts += [*update] + (["enabled"] if found["state"] != "ENABLED" else [])
        _settle(aws, name)
    return updated_or_unchanged("compute environment", name, parts), found["computeEnvironmentArn"]


def ensure_job_queue(aws: Aws, name: str, environment_arn: str, tags: dict[str, str]) -> Change:
    order = [{"order": 1, "computeEnvironment": environment_arn}]
    found = _job_queue(aws, name)
    if found is None:
        aws.batch.create_job_queue(
            jobQueueName=name, state="ENABLED", priority=1, computeEnvironmentOrder=order, tags=tags
        )
        _settle(aws, name, queue=True)
        return Change("created", "job queue", name)
    parts = [
        part
        for part, differs in (
            ("enabled", found["state"] != "ENABLED"),
            ("compute environment", found["computeEnvironmentOrder"] != order),
        )
        if differs
    ]
    if parts:
        aws.batch.update_job_queue(jobQueue=name, state="ENABLED", computeEnvironmentOrder=order)
        _settle(aws, name, queue=True)
    return updated_or_unchanged("job queue", name, parts)


def newest_job_definition(aws: Aws, name: str) -> dict[str, Any] | None:
    """The newest ACTIVE revision of job definition ``name``, or None."""
    active = (
        aws.batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"] if name else []
    )
    return max(active, key=lambda d: d["revision"], default=None)


def ensure_job_definition(aws: Aws, spec: dict[str, Any]) -> Change:
    name, digest = spec["jobDefinitionName"], spec["tags"]["tiler:spec"]
    latest = newest_job_definition(aws, name)
    if latest and (latest.get("tags") or {}).get("tiler:spec") == digest:
        return Change("unchanged", "job definition", f"{name}:{latest['revision']}")
    revision = aws.batch.register_job_definition(**spec)["revision"]
    return Change(
        "created" if latest is None else "updated",
        "job definition",
        f"{name}:{revision}",
        f"image {spec['containerProperties']['image']}",
    )


def delete_batch(aws: Aws, names: Names, owner: str) -> list[Change]:
    """Queue first (it refers to the environment), then the environment, then every revision of the definition."""
    return [
        _delete(aws, names.job_queue, owner, queue=True),
        _delete(aws, names.compute_environment, owner, queue=False),
        _deregister(aws, names.job_definition, owner),
    ]


def _delete(aws: Aws, name: str, owner: str, queue: bool) -> Change:
    kind = "job queue" if queue else "compute environment"
    found = _job_queue(aws, name) if queue else _compute_environment(aws, name)
    if found is None:
        return Change("absent", kind, name or "(not named in the stage)")
    if (found.get("tags") or {}).get(OWNER_TAG) != owner:
        return Change("kept", kind, name, f"not created by provisioning (no {OWNER_TAG}={owner} tag)")
    if found["state"] != "DISABLED":
        if queue:
            aws.batch.update_job_queue(jobQueue=name, state="DISABLED")
        else:
            aws.batch.update_compute_environment(computeEnvironment=name, state="DISABLED")
        _settle(aws, name, queue, strict=False)
    if queue:
        aws.batch.delete_job_queue(jobQueue=name)
    else:
        aws.batch.delete_compute_environment(computeEnvironment=name)
    describe = _job_queue if queue else _compute_environment
    wait_for(lambda: describe(aws, name) is None, f"{kind} {name} to be deleted")
    return Change("deleted", kind, name)


def _deregister(aws: Aws, name: str, owner: str) -> Change:
    if not name:
        return Change("absent", "job definition", "(not named in the stage)")
    active = aws.batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    ours = [d for d in active if (d.get("tags") or {}).get(OWNER_TAG) == owner]
    for definition in ours:
        aws.batch.deregister_job_definition(jobDefinition=definition["jobDefinitionArn"])
    if not active:
        return Change("absent", "job definition", name)
    kept = len(active) - len(ours)
    detail = f"{len(ours)} revision(s) deregistered" + (f", {kept} not created by provisioning kept" if kept else "")
    return Change("deleted" if ours else "kept", "job definition", name, detail)


def _settle(aws: Aws, name: str, queue: bool = False, strict: bool = True) -> None:
    """Wait until Batch has applied the last change; ``strict``: an INVALID result stops provisioning."""
    describe = _job_queue if queue else _compute_environment
    wait_for(lambda: (describe(aws, name) or {}).get("status") not in SETTLING, f"{name} to settle")
    found = describe(aws, name)
    if strict and found and found.get("status") == "INVALID":
        raise StageError(f"{name} is INVALID: {found.get('statusReason', 'no reason given')}")


def _compute_environment(aws: Aws, name: str) -> dict[str, Any] | None:
    found = aws.batch.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"] if name else []
    return next((e for e in found if e.get("status") != "DELETED"), None)


def _job_queue(aws: Aws, name: str) -> dict[str, Any] | None:
    found = aws.batch.describe_job_queues(jobQueues=[name])["jobQueues"] if name else []
    return next((q for q in found if q.get("status") != "DELETED"), None)
