"""Tear-down against moto over HTTP: everything provisioning made goes, data only when asked, nothing else."""

from __future__ import annotations

import pytest

from app.__main__ import main
from tooling.deploy.teardown import FunctionStillDeployed


def test_refuses_while_the_function_is_deployed(deployed):
    with pytest.raises(FunctionStillDeployed, match="zappa undeploy dev"):
        deployed.teardown()
    assert deployed.aws.s3.head_bucket(Bucket=deployed.names.source_bucket)


def test_removes_everything_provisioning_created(deployment):
    deployment.provision_and_push()
    changes = deployment.teardown(force=True)
    assert {c.action for c in changes} == {"deleted"}, "\n".join(deployment.output)
    aws, names = deployment.aws, deployment.names
    assert not [b for b in aws.s3.list_buckets()["Buckets"] if b["Name"].startswith(names.function)]
    assert aws.batch.describe_job_queues(jobQueues=[names.job_queue])["jobQueues"] == []
    assert (
        aws.batch.describe_compute_environments(computeEnvironments=[names.compute_environment])["computeEnvironments"]
        == []
    )
    assert (
        aws.batch.describe_job_definitions(jobDefinitionName=names.job_definition, status="ACTIVE")["jobDefinitions"]
        == []
    )
    assert not [r for r in aws.iam.list_roles()["Roles"] if r["RoleName"].startswith(names.function)]
    assert aws.ecr.describe_repositories()["repositories"] == []
    assert {c.action for c in deployment.teardown()} == {"absent"}, "a second tear-down finds nothing to do"


def test_keeps_data_unless_forced(deployment, capsys):
    deployment.provision()
    deployment.push_image()
    names = deployment.names
    deployment.aws.s3.put_object(Bucket=names.metadata_bucket, Key="jobs/a.json", Body=b"{}")
    args = ["teardown", "dev", "--settings-file", str(deployment.settings_file)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"kept      bucket {names.metadata_bucket}: not empty; --force deletes its objects too" in out
    assert f"kept      repository {names.repository}: holds 1 image(s)" in out
    assert f"deleted   bucket {names.tiles_bucket}" in out
    assert main([*args, "--force"]) == 0
    assert f"deleted   bucket {names.metadata_bucket}" in capsys.readouterr().out


def test_leaves_alone_what_provisioning_did_not_create(deployment):
    aws = deployment.aws
    aws.s3.create_bucket(Bucket="existing-uploads", CreateBucketConfiguration={"LocationConstraint": aws.region})
    deployment.provision(source_bucket="existing-uploads")
    changes = {c.name: c for c in deployment.teardown(force=True)}
    assert changes["existing-uploads"].action == "kept"
    assert "not created by provisioning" in changes["existing-uploads"].detail
    assert aws.s3.head_bucket(Bucket="existing-uploads")
