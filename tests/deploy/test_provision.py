"""Provisioning against moto over HTTP: what it creates, that a second run changes nothing, that drift is repaired."""

from __future__ import annotations

import json

import pytest

from tooling.deploy.documents import LIFECYCLE_RULE_ID
from tooling.deploy.stage import OWNER_TAG, StageError


def test_creates_every_resource_and_writes_the_stage(deployment):
    changes = deployment.provision()
    assert {c.action for c in changes[:-1]} == {"created"}
    assert [c.kind for c in changes] == ["bucket"] * 4 + [
        "origin access control",
        "distribution",
        "bucket policy",
        "repository",
    ] + ["role"] * 3 + ["compute environment", "job queue", "job definition"]
    assert changes[-1].action == "skipped" and "scripts/push_batch_image.sh dev" in changes[-1].detail, (
        "no job definition before an image is pushed: it would name an image that does not exist"
    )
    stage, names = deployment.stage, deployment.names
    function = stage.function_name
    env = stage.environment
    assert env["SOURCE_BUCKET"] == f"{function}-source-123456789012"
    distribution = deployment.aws.client("cloudfront").get_distribution(Id=env["CDN_DISTRIBUTION_ID"])
    assert env["PUBLIC_BASE_URL"] == f"https://{distribution['Distribution']['DomainName']}"
    assert (env["BATCH_JOB_QUEUE"], env["BATCH_JOB_DEFINITION"]) == (function, f"{function}-batch")
    assert env["LAMBDA_MAX_PIXELS"] == "50000000", "settings provisioning does not own are kept"
    assert stage.settings["events"] == [
        {
            "function": "app.events.handle_s3_event",
            "event_source": {"arn": f"arn:aws:s3:::{names.source_bucket}", "events": ["s3:ObjectCreated:*"]},
        }
    ]
    assert stage.settings["role_arn"] == f"arn:aws:iam::123456789012:role/{function}-lambda"
    assert stage.settings["manage_roles"] is False, "Zappa uses the least-privilege role, makes none of its own"
    assert stage.settings["s3_bucket"] == f"{function}-deploys-123456789012"
    assert "extra_permissions" not in json.loads(deployment.settings_file.read_text())["dev"]
    assert deployment.output[-1].startswith(
        "Next: scripts/push_batch_image.sh dev (builds, pushes, registers the image "
        "with Batch), then zappa deploy dev --docker-image-uri URI"
    )


def test_buckets_have_their_access_cors_and_lifecycle(deployment):
    deployment.provision()
    s3, names = deployment.aws.s3, deployment.names
    tiles_cors = s3.get_bucket_cors(Bucket=names.tiles_bucket)["CORSRules"]
    assert tiles_cors[0]["AllowedOrigins"] == ["*"] and tiles_cors[0]["AllowedMethods"] == ["GET", "HEAD"]
    assert s3.get_bucket_cors(Bucket=names.source_bucket)["CORSRules"][0]["AllowedMethods"] == ["POST"]
    for private in (names.source_bucket, names.tiles_bucket, names.metadata_bucket, names.deploy_bucket):
        block = s3.get_public_access_block(Bucket=private)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4
    for bucket in (*names.buckets, names.deploy_bucket):
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert [r["AbortIncompleteMultipartUpload"] for r in rules if r["ID"] == LIFECYCLE_RULE_ID] == [
            {"DaysAfterInitiation": 1}
        ]
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
        assert tags[OWNER_TAG] == names.function
        expiring = {r.get("Filter", {}).get("Prefix"): r["Expiration"] for r in rules if "Expiration" in r}
        assert expiring == {
            names.tiles_bucket: {"cache/": {"Days": 30}},
            names.metadata_bucket: {"sessions/": {"Days": 2}, "signin/": {"Days": 1}},
        }.get(bucket, {}), "only stored answers and sign-in state expire; nothing else is ever deleted by age"


def test_roles_are_least_privilege(deployment):
    deployment.provision()
    iam, names = deployment.aws.iam, deployment.names
    policies = {
        role: iam.get_role_policy(RoleName=role, PolicyName="tiler")["PolicyDocument"]
        for role in (names.lambda_role, names.job_role, names.execution_role)
    }
    stage_buckets = {f"arn:aws:s3:::{b}" for b in names.buckets} | {f"arn:aws:s3:::{b}/*" for b in names.buckets}
    for role, policy in policies.items():
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
        for statement in policy["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if any(action.startswith("s3:") for action in statement["Action"]):
                assert set(resources) <= stage_buckets, f"{role} reaches beyond the stage's buckets"
    submitters = {
        role: s["Resource"]
        for role, policy in policies.items()
        for s in policy["Statement"]
        if "batch:SubmitJob" in s["Action"]
    }
    assert list(submitters) == [names.lambda_role]
    assert all(
        f":job-queue/{names.job_queue}" in r or f":job-definition/{names.job_definition}" in r
        for r in submitters[names.lambda_role]
    )
    job_s3 = {
        a
        for s in policies[names.job_role]["Statement"]
        for a in s["Action"]
        if f"arn:aws:s3:::{names.source_bucket}/*" in str(s["Resource"])
    }
    assert job_s3 == {"s3:GetObject"}, "the Batch job only reads the source bucket"
    trust = iam.get_role(RoleName=names.lambda_role)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": ["lambda.amazonaws.com", "apigateway.amazonaws.com"]}


def test_batch_runs_the_stage_image_on_fargate_from_zero(deployment):
    deployment.provision_and_push()
    batch, names = deployment.aws.batch, deployment.names
    environment = batch.describe_compute_environments(computeEnvironments=[names.compute_environment])[
        "computeEnvironments"
    ][0]
    assert environment["computeResources"]["type"] == "FARGATE" and environment["state"] == "ENABLED"
    assert "minvCpus" not in environment["computeResources"], "Fargate keeps no capacity: an idle stage costs nothing"
    queue = batch.describe_job_queues(jobQueues=[names.job_queue])["jobQueues"][0]
    assert (queue["state"], queue["status"]) == ("ENABLED", "VALID")
    definition = batch.describe_job_definitions(jobDefinitionName=names.job_definition)["jobDefinitions"][0]
    container = definition["containerProperties"]
    assert container["image"] == f"{names.repository_uri}:git-0123456789ab", "the pushed commit's tag, never :latest"
    assert container["jobRoleArn"].endswith(f"role/{names.job_role}")
    assert {e["name"]: e["value"] for e in container["environment"]}["TILES_BUCKET"] == names.tiles_bucket
    assert container["command"][:3] == ["python", "-m", "batch_fallback"]
    assert deployment.aws.ecr.describe_repositories(repositoryNames=[names.repository])["repositories"]


def test_a_second_run_changes_nothing(deployment):
    deployment.provision_and_push()
    settings_before = deployment.settings_file.read_bytes()
    again = deployment.provision()
    assert {c.line() for c in again if c.action != "unchanged"} == set()
    assert deployment.settings_file.read_bytes() == settings_before
    assert deployment.output[-2].startswith("unchanged stage dev")
    definitions = deployment.aws.batch.describe_job_definitions(jobDefinitionName=deployment.names.job_definition)
    assert [d["revision"] for d in definitions["jobDefinitions"]] == [1]


def test_a_rerun_repairs_drift(deployment):
    deployment.provision()
    aws, names = deployment.aws, deployment.names
    aws.s3.delete_bucket_cors(Bucket=names.tiles_bucket)
    aws.batch.update_job_queue(jobQueue=names.job_queue, state="DISABLED")
    aws.iam.put_role_policy(
        RoleName=names.job_role,
        PolicyName="by-hand",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    other_rule = {"ID": "expire-old", "Status": "Enabled", "Filter": {"Prefix": "old/"}, "Expiration": {"Days": 30}}
    aws.s3.put_bucket_lifecycle_configuration(
        Bucket=names.source_bucket, LifecycleConfiguration={"Rules": [other_rule]}
    )
    changed = {c.name: c.detail for c in deployment.provision() if c.action == "updated"}
    assert changed == {
        names.tiles_bucket: "CORS",
        names.job_queue: "enabled",
        names.job_role: "removed inline policy by-hand",
        names.source_bucket: "lifecycle",
    }
    rules = aws.s3.get_bucket_lifecycle_configuration(Bucket=names.source_bucket)["Rules"]
    assert {r["ID"] for r in rules} == {"expire-old", LIFECYCLE_RULE_ID}, "other lifecycle rules are kept"
    assert {c.action for c in deployment.provision()} <= {"unchanged", "skipped"}  # skipped: no image pushed


def test_chosen_bucket_names_are_kept_on_later_runs(deployment):
    deployment.provision(source_bucket="my-museum-uploads")
    assert deployment.stage.environment["SOURCE_BUCKET"] == "my-museum-uploads"
    assert {c.action for c in deployment.provision()} <= {"unchanged", "skipped"}  # skipped: no image pushed
    assert deployment.stage.environment["SOURCE_BUCKET"] == "my-museum-uploads"


def test_the_job_converts_with_the_stage_settings(deployment):
    """A big image sent to Batch gets the URLs, tile size and outputs the function gives the rest; no secret."""
    settings = json.loads(deployment.settings_file.read_text())
    settings["dev"]["environment_variables"].update(
        TILE_SIZE="256", IIIF_MANIFESTS="false", IIIF_VERSIONS="2,3", DASHBOARD_PASSWORD="x"
    )
    deployment.settings_file.write_text(json.dumps(settings))
    deployment.provision_and_push(public_bucket=True, public_base_url="https://tiles.example.org")
    batch, name = deployment.aws.batch, deployment.names.job_definition
    container = batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"][0]["containerProperties"]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert (environment["TILE_SIZE"], environment["IIIF_MANIFESTS"]) == ("256", "false")
    assert environment["IIIF_VERSIONS"] == "2,3"  # a big image publishes the same IIIF versions
    assert environment["PUBLIC_BASE_URL"] == "https://tiles.example.org"  # a CDN's ids in big images' info.json too
    assert "DASHBOARD_PASSWORD" not in environment and "JPEG_QUALITY" not in environment  # unset: same default
    assert environment["UPLOAD_WORKERS"] == "64"  # the template's own values stay


def test_images_are_pinned_pushed_and_kept(deployment):
    """Batch runs exactly the pushed commit: a moving tag or an image not in ECR is refused; later runs keep it."""
    deployment.provision()
    names, uri = deployment.names, deployment.push_image("git-feedfacecafe")
    repository = deployment.aws.ecr.describe_repositories(repositoryNames=[names.repository])["repositories"][0]
    assert repository["imageTagMutability"] == "IMMUTABLE", "a commit tag can never be moved to other bytes"
    for refused, reason in (
        (f"{names.repository_uri}:latest", "moving tag"),
        (names.repository_uri, "moving tag"),
        (f"{names.repository_uri}:git-000000000000", "is not in ECR"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/other:git-feedfacecafe", "not in the stage"),
    ):
        with pytest.raises(StageError, match=reason):
            deployment.provision(image=refused)
    deployment.provision(image=uri)
    deployment.provision()
    definitions = deployment.aws.batch.describe_job_definitions(jobDefinitionName=names.job_definition)
    assert [d["containerProperties"]["image"] for d in definitions["jobDefinitions"]] == [uri]
