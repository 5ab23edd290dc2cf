"""Public tiles under any Block Public Access: CloudFront in front of a private bucket, or a public bucket where
the account allows it; the serving TIFFs private either way. Provisioning, the doctor's outside view (through
the stand-ins in standins.py) and tear-down, against moto over HTTP."""

from __future__ import annotations

import json

import pytest
import requests
from botocore.exceptions import ClientError

from app.__main__ import main
from tooling.deploy import documents
from tooling.deploy.buckets import POLICY_RETRY_DELAYS, put_policy
from tooling.deploy.cdn import (
    CACHING_OPTIMIZED,
    CORS_S3_ORIGIN,
    CORS_WITH_PREFLIGHT,
    oac_name,
)
from tooling.deploy.checks import Context
from tooling.deploy.checks.public import api_url
from tooling.deploy.stage import OWNER_TAG, StageError

ACCOUNT = "123456789012"
CERTIFICATE = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/0f6c3b1e"
ACCOUNT_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def failing(checks):
    return {name for name, check in checks.items() if not check.passed}


def distribution_of(deployment) -> dict:
    cloudfront = deployment.aws.client("cloudfront")
    return cloudfront.get_distribution(Id=deployment.stage.environment["CDN_DISTRIBUTION_ID"])["Distribution"]


def test_tiles_are_served_by_cloudfront_from_a_private_bucket(deployment):
    deployment.provision_and_push()
    aws, names, env = deployment.aws, deployment.names, deployment.stage.environment
    distribution = distribution_of(deployment)
    config = distribution["DistributionConfig"]
    assert env["PUBLIC_BASE_URL"] == f"https://{distribution['DomainName']}", "written before any image converts"
    assert env["CDN_DISTRIBUTION_ID"] == distribution["Id"]
    (origin,) = config["Origins"]["Items"]
    assert origin["DomainName"] == f"{names.tiles_bucket}.s3.eu-west-1.amazonaws.com", "the regional endpoint"
    oac = aws.client("cloudfront").get_origin_access_control(Id=origin["OriginAccessControlId"])
    assert oac["OriginAccessControl"]["OriginAccessControlConfig"] == {
        "Name": oac_name(names.function),
        "Description": f"{OWNER_TAG}={names.function}",
        "SigningProtocol": "sigv4",
        "SigningBehavior": "always",
        "OriginAccessControlOriginType": "s3",
    }
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https" and behaviour["Compress"] is True
    assert sorted(behaviour["AllowedMethods"]["Items"]) == ["GET", "HEAD", "OPTIONS"]
    assert sorted(behaviour["AllowedMethods"]["CachedMethods"]["Items"]) == ["GET", "HEAD"], "preflights reach S3"
    assert (behaviour["CachePolicyId"], behaviour["OriginRequestPolicyId"], behaviour["ResponseHeadersPolicyId"]) == (
        CACHING_OPTIMIZED,
        CORS_S3_ORIGIN,
        CORS_WITH_PREFLIGHT,
    )
    assert config["PriceClass"] == "PriceClass_100" and config["Enabled"] is True
    tags = aws.client("cloudfront").list_tags_for_resource(Resource=distribution["ARN"])["Tags"]["Items"]
    assert {"Key": OWNER_TAG, "Value": names.function} in tags

    block = aws.s3.get_public_access_block(Bucket=names.tiles_bucket)["PublicAccessBlockConfiguration"]
    assert block == documents.PRIVATE, "all four settings on: the bucket is private"
    allow, deny, listing = json.loads(aws.s3.get_bucket_policy(Bucket=names.tiles_bucket)["Policy"])["Statement"]
    assert allow == {
        "Sid": "CloudFrontReadsTiles",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{names.tiles_bucket}/*",
        "Condition": {"StringEquals": {"AWS:SourceArn": distribution["ARN"]}},
    }
    assert deny == {
        "Sid": "ServingTiffsStayPrivate",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{names.tiles_bucket}/derivatives/*",
        "Condition": {"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}},
    }
    assert listing == {  # so a withdrawn tile answers 404, not 403 ...
        "Sid": "CloudFrontSeesMissingTiles",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{names.tiles_bucket}",
        "Condition": {"StringEquals": {"AWS:SourceArn": distribution["ARN"]}},
    }
    assert config["DefaultRootObject"] == "index.html", "... while '/' is never a listing of the bucket"

    for role in (names.lambda_role, names.job_role):
        statements = aws.iam.get_role_policy(RoleName=role, PolicyName="tiler")["PolicyDocument"]["Statement"]
        assert [s["Resource"] for s in statements if "cloudfront:CreateInvalidation" in s["Action"]] == [
            distribution["ARN"]
        ], f"{role} invalidates in this distribution only"
    job = aws.batch.describe_job_definitions(jobDefinitionName=names.job_definition, status="ACTIVE")["jobDefinitions"][
        -1
    ]["containerProperties"]["environment"]
    assert {"name": "CDN_DISTRIBUTION_ID", "value": distribution["Id"]} in job, "Batch invalidates what it replaces"

    settings = deployment.settings_file.read_bytes()
    assert {c.action for c in deployment.provision()} == {"unchanged"}
    assert deployment.settings_file.read_bytes() == settings


def test_drift_in_the_distribution_is_repaired(deployment):
    deployment.provision()
    cloudfront, distribution = deployment.aws.client("cloudfront"), distribution_of(deployment)
    answer = cloudfront.get_distribution_config(Id=distribution["Id"])
    config = answer["DistributionConfig"]
    config["DefaultCacheBehavior"].pop("OriginRequestPolicyId")
    config["PriceClass"] = "PriceClass_All"
    cloudfront.update_distribution(Id=distribution["Id"], IfMatch=answer["ETag"], DistributionConfig=config)
    changed = {c.kind: c.detail for c in deployment.provision() if c.action == "updated"}
    assert changed == {"distribution": "cache behaviour, price class"}
    assert distribution_of(deployment)["DistributionConfig"]["DefaultCacheBehavior"]["OriginRequestPolicyId"] == (
        CORS_S3_ORIGIN
    )


def test_a_custom_domain_is_kept_on_later_runs(deployment):
    deployment.provision_and_push(domain="tiles.example.org", certificate_arn=CERTIFICATE)
    config = distribution_of(deployment)["DistributionConfig"]
    assert config["Aliases"]["Items"] == ["tiles.example.org"]
    assert config["ViewerCertificate"]["ACMCertificateArn"] == CERTIFICATE
    assert config["ViewerCertificate"]["SSLSupportMethod"] == "sni-only"
    assert deployment.stage.environment["PUBLIC_BASE_URL"] == "https://tiles.example.org"
    assert any(line.startswith("DNS: tiles.example.org must point at ") for line in deployment.output)
    assert {c.action for c in deployment.provision()} == {"unchanged"}, (
        "no --domain on a later run: the distribution keeps its domain and certificate"
    )
    with pytest.raises(StageError, match="ACM certificate in us-east-1"):
        deployment.provision(domain="tiles.example.org", certificate_arn=CERTIFICATE.replace("us-east-1", "eu-west-1"))


def test_a_public_bucket_is_refused_when_the_account_blocks_public_policies(deployment, capsys):
    deployment.aws.client("s3control").put_public_access_block(
        AccountId=ACCOUNT, PublicAccessBlockConfiguration=ACCOUNT_BLOCK
    )
    code = main(["provision", "dev", "--public-bucket", "--settings-file", str(deployment.settings_file)])
    error = capsys.readouterr().err
    assert code == 1 and "blocks public bucket policies (BlockPublicPolicy, RestrictPublicBuckets)" in error
    assert "python -m app provision dev --cloudfront" in error
    assert f"aws s3control put-public-access-block --account-id {ACCOUNT}" in error
    assert not [
        b for b in deployment.aws.s3.list_buckets()["Buckets"] if b["Name"].startswith(deployment.names.function)
    ], "refused before anything was created"


def test_a_public_bucket_where_the_account_allows_it(deployment):
    deployment.provision_and_push(public_bucket=True)
    aws, names, env = deployment.aws, deployment.names, deployment.stage.environment
    assert "CDN_DISTRIBUTION_ID" not in env and env["PUBLIC_BASE_URL"] == names.public_base_url
    block = aws.s3.get_public_access_block(Bucket=names.tiles_bucket)["PublicAccessBlockConfiguration"]
    assert block == documents.PUBLIC_POLICY_ONLY
    assert json.loads(aws.s3.get_bucket_policy(Bucket=names.tiles_bucket)["Policy"]) == documents.public_read(
        names.tiles_bucket, ACCOUNT
    )
    assert aws.client("cloudfront").list_distributions()["DistributionList"].get("Items") is None
    assert {c.action for c in deployment.provision()} == {"unchanged"}, (
        "a later run without --public-bucket keeps the bucket public: its URLs are published"
    )
    deployment.provision(public_bucket=False)  # --cloudfront
    assert deployment.stage.environment["PUBLIC_BASE_URL"] == f"https://{distribution_of(deployment)['DomainName']}"
    block = aws.s3.get_public_access_block(Bucket=names.tiles_bucket)["PublicAccessBlockConfiguration"]
    assert block == documents.PRIVATE


def test_putting_a_public_policy_retries_access_denied_with_backoff():
    class S3:
        def __init__(self, refusals: int) -> None:
            self.refusals, self.puts = refusals, 0

        def put_bucket_policy(self, **_: str) -> None:
            self.puts += 1
            if self.puts <= self.refusals:
                raise ClientError({"Error": {"Code": "AccessDenied"}}, "PutBucketPolicy")

    slept: list[float] = []
    s3 = S3(refusals=2)
    put_policy(s3, "tiles", {"Statement": []}, sleep=slept.append)
    assert (s3.puts, slept) == (3, [1, 2])

    slept.clear()
    with pytest.raises(StageError, match="still refuses the policy of s3://tiles after 63 s"):
        put_policy(S3(refusals=100), "tiles", {"Statement": []}, sleep=slept.append)
    assert slept == list(POLICY_RETRY_DELAYS), "bounded: about a minute in all"


def test_teardown_disables_the_distribution_then_deletes_it_once_deployed(deployment, local_s3):
    deployment.provision()
    transition = {"model_name": "cloudfront::distribution"}
    requests.post(
        f"{local_s3.url}/moto-api/state-manager/set-transition",
        timeout=10,
        json={**transition, "transition": {"progression": "manual", "times": 1000}},
    ).raise_for_status()
    try:
        changes = {c.kind: c for c in deployment.teardown(force=True)}
    finally:
        requests.post(f"{local_s3.url}/moto-api/state-manager/unset-transition", json=transition, timeout=10)
    assert changes["distribution"].action == "kept"
    assert changes["distribution"].detail.startswith("disabled; run teardown again in about 15 minutes")
    assert changes["origin access control"].action == "kept"
    assert distribution_of(deployment)["DistributionConfig"]["Enabled"] is False

    changes = {c.kind: c.action for c in deployment.teardown(force=True)}
    assert (changes["distribution"], changes["origin access control"]) == ("deleted", "deleted")
    cloudfront = deployment.aws.client("cloudfront")
    assert cloudfront.list_distributions()["DistributionList"].get("Items") is None
    assert cloudfront.list_origin_access_controls()["OriginAccessControlList"].get("Items") in (None, [])


def test_teardown_keeps_a_distribution_without_the_owner_tag(deployment):
    deployment.provision()
    cloudfront, distribution = deployment.aws.client("cloudfront"), distribution_of(deployment)
    cloudfront.untag_resource(Resource=distribution["ARN"], TagKeys={"Items": [OWNER_TAG]})
    changes = {c.kind: c for c in deployment.teardown(force=True)}
    assert changes["distribution"].action == "kept" and "not created by provisioning" in changes["distribution"].detail
    assert distribution_of(deployment)["DistributionConfig"]["Enabled"] is True


def test_the_doctor_proves_the_public_side_from_outside(deployed):
    checks = deployed.doctor()
    assert failing(checks) == set(), "\n".join(deployed.output)
    assert "answered the probe tile" in checks["tiles public"].detail
    assert "is refused (403)" in checks["serving TIFF private"].detail
    assert checks["public CORS"].detail.startswith(f"{deployed.edge_url}/")
    assert checks["dashboard"].detail == f'{deployed.api_url}/healthz answers 200 {{"ok": true}}'
    assert not deployed.aws.s3.list_objects_v2(Bucket=deployed.names.tiles_bucket).get("Contents"), (
        "the probes are deleted"
    )


def test_an_account_block_is_harmless_behind_cloudfront(deployed):
    deployed.aws.client("s3control").put_public_access_block(
        AccountId=ACCOUNT, PublicAccessBlockConfiguration=ACCOUNT_BLOCK
    )
    checks = deployed.doctor()
    assert failing(checks) == set(), "\n".join(deployed.output)
    assert "harmless" in checks["account public access"].detail


def test_a_tile_cloudfront_may_not_read_is_flagged(deployed):
    names = deployed.names
    other = names.distribution_arn.replace(names.distribution_id, "EOTHERDISTRIBUTION")
    policy = documents.cloudfront_read(names.tiles_bucket, other, ACCOUNT)
    deployed.aws.s3.put_bucket_policy(Bucket=names.tiles_bucket, Policy=json.dumps(policy))
    checks = deployed.doctor()
    assert failing(checks) == {"tiles public"}
    assert "answered 403: viewers cannot read the tiles" in checks["tiles public"].detail
    assert f"lets distribution {names.distribution_id} read" in checks["tiles public"].fix


def test_a_distribution_that_drops_cors_is_flagged(deployed):
    cloudfront, distribution_id = deployed.aws.client("cloudfront"), deployed.names.distribution_id
    answer = cloudfront.get_distribution_config(Id=distribution_id)
    config = answer["DistributionConfig"]
    config["DefaultCacheBehavior"].pop("OriginRequestPolicyId")  # S3 then never sees the preflight's Origin
    cloudfront.update_distribution(Id=distribution_id, IfMatch=answer["ETag"], DistributionConfig=config)
    checks = deployed.doctor()
    assert failing(checks) == {"public CORS"}
    assert "for GET to" in checks["public CORS"].detail and "got 400" in checks["public CORS"].detail
    assert "forwards CORS requests to S3" in checks["public CORS"].fix


def test_readable_serving_tiffs_are_flagged(deployed):
    names = deployed.names
    allow_only = documents.cloudfront_read(names.tiles_bucket, names.distribution_arn, ACCOUNT)
    allow_only["Statement"] = allow_only["Statement"][:1]
    deployed.aws.s3.put_bucket_policy(Bucket=names.tiles_bucket, Policy=json.dumps(allow_only))
    checks = deployed.doctor()
    assert failing(checks) == {"serving TIFF private"}
    assert "anyone can download the full-resolution serving TIFFs" in checks["serving TIFF private"].detail
    assert "denies derivatives/*" in checks["serving TIFF private"].fix


def test_an_account_block_fails_a_public_bucket_with_the_fix(deployment):
    deployment.provision_and_push(public_bucket=True)
    deployment.deploy_function()
    assert failing(deployment.doctor()) == set(), "\n".join(deployment.output)
    deployment.aws.client("s3control").put_public_access_block(
        AccountId=ACCOUNT, PublicAccessBlockConfiguration=ACCOUNT_BLOCK
    )
    checks = deployment.doctor()
    assert failing(checks) == {"account public access", "tiles public"}, "the bucket's policy still reads public"
    assert "viewers get 403 for every tile" in checks["account public access"].detail
    assert checks["account public access"].fix.startswith("python -m app provision dev --cloudfront")
    assert "serve the tiles through CloudFront" in checks["tiles public"].fix


def test_a_dashboard_answering_500_is_flagged_with_the_invoke_path(deployed):
    names = deployed.names
    trust = documents.trust("lambda.amazonaws.com")  # as a role made for Lambda alone: API Gateway cannot use it
    deployed.aws.iam.update_assume_role_policy(RoleName=names.lambda_role, PolicyDocument=json.dumps(trust))
    checks = deployed.doctor()
    assert "dashboard" in failing(checks)
    assert checks["dashboard"].detail.startswith(f"{deployed.api_url}/healthz answered 500")
    assert "trusts apigateway.amazonaws.com" in checks["dashboard"].fix


def test_the_dashboard_is_found_in_api_gateway(deployed):
    api = deployed.aws.client("apigateway").create_rest_api(name=deployed.names.function)
    context = Context(deployed.stage, deployed.names, deployed.aws)
    assert api_url(context) == f"https://{api['id']}.execute-api.eu-west-1.amazonaws.com/dev"
