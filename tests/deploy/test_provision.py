"""Provisioning against moto over HTTP: what it creates, that a second run changes nothing, that drift is repaired."""

from __future__ import annotations

import json
from types import SimpleNamespace
from urllib.parse import unquote_plus

import pytest
from zappa.handler import LambdaHandler

from app import records
from tooling.deploy import iam
from tooling.deploy.aws import Aws
from tooling.deploy.documents import LIFECYCLE_RULE_ID
from tooling.deploy.stage import OWNER_TAG, StageError


def test_creates_every_resource_and_writes_the_stage(deployment):
    changes = deployment.provision()
    assert [c.kind for c in changes] == ["bucket"] * 4 + [
        "origin access control",
        "distribution",
        "bucket policy",
        "queue",
        "queue",
        "notification",
        "repository",
    ] + ["role"] * 3 + ["event source mapping"] + ["alarm"] * 3 + ["compute environment", "job queue", "job definition"]
    skipped = [c for c in changes if c.action == "skipped"]
    assert {c.action for c in changes} - {"skipped"} == {"created"}
    assert [c.kind for c in skipped] == ["event source mapping", "job definition"]
    assert "python -m app provision dev again after zappa deploy" in skipped[0].detail, "the mapping needs the function"
    assert "scripts/push_batch_image.sh dev" in skipped[1].detail, (
        "no job definition before an image is pushed: it would name an image that does not exist"
    )
    stage = deployment.stage
    function = stage.function_name
    env = stage.environment
    assert env["SOURCE_BUCKET"] == f"{function}-source-123456789012"
    distribution = deployment.aws.client("cloudfront").get_distribution(Id=env["CDN_DISTRIBUTION_ID"])
    assert env["PUBLIC_BASE_URL"] == f"https://{distribution['Distribution']['DomainName']}"
    assert (env["BATCH_JOB_QUEUE"], env["BATCH_JOB_DEFINITION"]) == (function, f"{function}-batch")
    assert env["LAMBDA_MAX_PIXELS"] == "50000000", "settings provisioning does not own are kept"
    queue_arn = f"arn:aws:sqs:{stage.region}:123456789012:{function}-events"
    assert stage.settings["events"] == [
        {
            "function": "app.events.handle_s3_event",
            "event_source": {"arn": queue_arn, "batch_size": 5, "enabled": False},  # until the mapping is set up
        },
        {"function": "app.sweep.run", "expression": "rate(10 minutes)", "description": "re-drive or fail stuck jobs"},
    ], "Zappa's own S3 wiring of the source bucket is gone"
    assert (env["EVENT_QUEUE"], env["DEAD_LETTER_QUEUE"]) == (f"{function}-events", f"{function}-events-dead")
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
    stage_buckets = {f"arn:aws:s3:::{b}" for b in names.buckets}
    for role, policy in policies.items():
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
        for statement in policy["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if any(action.startswith("s3:") for action in statement["Action"]):
                assert all(r.split("/", 1)[0] in stage_buckets for r in resources), f"{role} reaches beyond them"
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
    assert job_s3 == {"s3:GetObject"}, "the Batch job only reads the source bucket's uploads"
    pages = {
        role: {a for s in policies[role]["Statement"] for a in s["Action"] if "/pages/*" in str(s["Resource"])}
        for role in (names.lambda_role, names.job_role)
    }
    assert pages == dict.fromkeys(pages, {"s3:PutObject", "s3:DeleteObject"}), "a document's pages, and only they"
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
    assert [c.kind for c in again if c.action != "unchanged"] == ["event source mapping"]  # skipped: no function yet
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


def test_an_upload_while_the_notification_is_rewritten_is_still_announced(deployment, monkeypatch):
    """Provisioning replaces the notification in one request, so an upload at any moment of the rewrite (here:
    before and after each of its S3 requests) reaches the queue; Zappa's wiring removed it, then added it."""
    deployment.provision()
    names, s3 = deployment.names, deployment.aws.s3
    stale = s3.get_bucket_notification_configuration(Bucket=names.source_bucket)
    stale.pop("ResponseMetadata")
    stale["QueueConfigurations"][0]["Events"] = ["s3:ObjectCreated:*"]  # something to rewrite
    s3.put_bucket_notification_configuration(Bucket=names.source_bucket, NotificationConfiguration=stale)
    uploads = []

    def upload(**_):
        uploads.append(f"during/{len(uploads)}.jpg")
        s3.put_object(Bucket=names.source_bucket, Key=uploads[-1], Body=b"x")

    keep = Aws.client

    def watched(self, service):
        client = keep(self, service)
        if service == "s3" and not getattr(client, "_watched", False):
            for operation in ("GetBucketNotificationConfiguration", "PutBucketNotificationConfiguration"):
                client.meta.events.register(f"before-call.s3.{operation}", upload)
                client.meta.events.register(f"after-call.s3.{operation}", upload)
            client._watched = True
        return client

    monkeypatch.setattr(Aws, "client", watched)
    changes = deployment.provision()
    monkeypatch.setattr(Aws, "client", keep)
    assert [c.action for c in changes if c.kind == "notification"] == ["updated"]
    assert len(uploads) == 4
    sqs = deployment.aws.client("sqs")
    url = sqs.get_queue_url(QueueName=names.event_queue)["QueueUrl"]
    announced = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            announced += [r["s3"]["object"]["key"] for r in json.loads(message["Body"]).get("Records", [])]
    assert sorted(unquote_plus(key) for key in announced) == sorted(uploads)


def test_once_deployed_the_queue_drives_the_function_as_lambda_requires(deployment):
    """The second provision, after zappa deploy, configures the mapping Zappa made (Zappa sets neither a concurrency
    cap nor per-message failures), enables the stage's event, and removes the S3 invoke permission Zappa's old
    wiring left; the queue is what AWS requires of one behind a function."""
    deployment.provision_and_push()
    deployment.deploy_function()
    names, stage, aws = deployment.names, deployment.stage, deployment.aws
    aws.lambda_.add_permission(  # what every deploy of Zappa's S3 wiring added, and none removed
        FunctionName=names.function,
        StatementId="s3-old-wiring",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=f"arn:aws:s3:::{names.source_bucket}",
    )
    (zappas,) = aws.lambda_.list_event_source_mappings(FunctionName=names.function_arn)["EventSourceMappings"]
    assert zappas["State"] == "Disabled" and not zappas.get("FunctionResponseTypes")
    changes = {c.kind: c for c in deployment.provision()}
    assert changes["event source mapping"].action == "updated"
    assert changes["function policy"].detail == "removed 1 S3 invoke statement(s)"
    (mapping,) = aws.lambda_.list_event_source_mappings(FunctionName=names.function_arn)["EventSourceMappings"]
    assert mapping["UUID"] == zappas["UUID"] and mapping["State"] == "Enabled"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 10} and mapping["BatchSize"] == 5
    assert [e["event_source"]["enabled"] for e in stage.settings["events"] if "event_source" in e] == [False]
    assert [e["event_source"]["enabled"] for e in deployment.stage.settings["events"] if "event_source" in e] == [True]

    # Zappa's handler routes an SQS record to the function its settings map the queue's ARN to; its settings file
    # maps each event's ARN to its function as zappa.cli does (create_package, AWS_EVENT_MAPPING)
    event_mapping: dict = {}
    for event in deployment.stage.settings["events"]:
        if event.get("event_source", {}).get("arn") and event.get("function"):
            event_mapping.setdefault(event["event_source"]["arn"], []).append(event["function"])
    handler = SimpleNamespace(settings=SimpleNamespace(AWS_EVENT_MAPPING=event_mapping))
    record = {"eventSource": "aws:sqs", "eventSourceARN": mapping["EventSourceArn"], "body": "{}"}
    assert LambdaHandler.get_function_for_aws_event(handler, record) == ["app.events.handle_s3_event"]

    queue = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.client("sqs").get_queue_url(QueueName=names.event_queue)["QueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert int(queue["VisibilityTimeout"]) >= 6 * stage.settings["timeout_seconds"], "Lambda's rule for SQS sources"
    assert int(queue["MessageRetentionPeriod"]) == 14 * 24 * 3600
    redrive = json.loads(queue["RedrivePolicy"])
    assert (
        redrive["deadLetterTargetArn"].endswith(f":{names.dead_letter_queue}") and int(redrive["maxReceiveCount"]) == 5
    )
    source = {"aws:SourceArn": f"arn:aws:s3:::{names.source_bucket}", "aws:SourceAccount": names.account}
    policy = json.loads(queue["Policy"])
    assert iam.service_may(policy, "s3.amazonaws.com", "sqs:SendMessage", mapping["EventSourceArn"], source)
    other = {**source, "aws:SourceArn": "arn:aws:s3:::someone-elses-bucket"}
    assert not iam.service_may(policy, "s3.amazonaws.com", "sqs:SendMessage", mapping["EventSourceArn"], other)
    role = iam.role_documents(aws, stage.settings["role_arn"])[1]
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"):
        assert iam.allows(role, action, mapping["EventSourceArn"]), (
            f"the mapping polls as the function's role: {action}"
        )
    assert iam.allows(role, "sqs:SendMessage", mapping["EventSourceArn"]), "the sweep re-drives through the queue"
    dead_arn = mapping["EventSourceArn"].replace(names.event_queue, names.dead_letter_queue)
    assert iam.allows(role, "sqs:ReceiveMessage", dead_arn) and not iam.allows(role, "sqs:SendMessage", dead_arn)
    notification = deployment.s3_notification(names.source_bucket)
    assert "LambdaFunctionConfigurations" not in notification
    (wired,) = notification["QueueConfigurations"]
    assert wired["QueueArn"] == mapping["EventSourceArn"]
    assert sorted(wired["Events"]) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]


def test_alarms_notify_the_topic_or_address_given(deployment):
    deployment.provision(alarm_email="ops@example.org")
    names, aws = deployment.names, deployment.aws
    topic = f"arn:aws:sns:{deployment.stage.region}:123456789012:{names.alarm_topic}"
    subscriptions = aws.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "ops@example.org")]
    alarms = aws.client("cloudwatch").describe_alarms(AlarmNamePrefix=names.function)["MetricAlarms"]
    assert {a["AlarmName"].removeprefix(names.function) for a in alarms} == {
        "-dead-letters",
        "-oldest-event",
        "-failure-rate",
    }
    assert all(a["AlarmActions"] == [topic] for a in alarms)
    by_name = {a["AlarmName"].removeprefix(names.function): a for a in alarms}
    assert by_name["-dead-letters"]["Dimensions"] == [{"Name": "QueueName", "Value": names.dead_letter_queue}]
    rate = next(m for m in by_name["-failure-rate"]["Metrics"] if m.get("Expression"))
    assert "failed" in rate["Expression"] and "done" in rate["Expression"]
    deployment.provision(alarm_topic="arn:aws:sns:eu-west-1:123456789012:ops")
    again = aws.client("cloudwatch").describe_alarms(AlarmNamePrefix=names.function)["MetricAlarms"]
    assert all(a["AlarmActions"] == ["arn:aws:sns:eu-west-1:123456789012:ops"] for a in again)


def test_the_function_may_learn_that_a_key_is_missing_where_its_code_asks(deployment):
    """On a real account, GetObject or HeadObject of a missing key answers 403, not 404, unless the role may also
    list the bucket. The function asks on purpose: the endpoint fetches a request's own path as a guess at a
    published tile (tiles bucket, 3.0 and 2.1 names), and a late event's job heads its source to see whether it is
    gone, then takes the image's claim (metadata bucket). A 403 there would be a storage failure, not an answer."""
    deployment.provision()
    aws, names = deployment.aws, deployment.names
    _, policies = iam.role_documents(aws, names.role_arn(names.lambda_role))
    asked = {
        names.tiles_bucket: [
            "box/leaf/0,0,512,512/512,512/0/default.jpg",
            "iiif/2/box/leaf/0,0,512,512/512,/0/default.jpg",
        ],
        names.source_bucket: ["box/leaf.jpg"],
        names.metadata_bucket: [records.record_key("box/leaf"), records.claim_key("box/leaf")],
    }
    for bucket, keys in asked.items():
        assert iam.allows(policies, "s3:ListBucket", f"arn:aws:s3:::{bucket}"), f"a missing key in {bucket} is a 403"
        for key in keys:
            assert iam.allows(policies, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"), key
    assert iam.allows(policies, "s3:PutObject", f"arn:aws:s3:::{names.metadata_bucket}/{records.claim_key('box/leaf')}")


def test_both_roles_may_write_and_delete_the_page_sources_their_jobs_do(deployment):
    """A document's job (on Lambda, or on AWS Batch when splitting needs longer) uploads one source per page under
    pages/, deletes an earlier version's, and a takedown deletes them all: on a real account, the role must
    allow it (S3's DeleteObjects answers 200 and lists AccessDenied per key, so nothing else would say so)."""
    deployment.provision()
    aws, names = deployment.aws, deployment.names
    page = f"arn:aws:s3:::{names.source_bucket}/pages/box/ledger/p0001@0123abcd.pdf"
    upload = f"arn:aws:s3:::{names.source_bucket}/box/ledger.pdf"
    for role in (names.lambda_role, names.job_role):
        _, policies = iam.role_documents(aws, names.role_arn(role))
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            assert iam.allows(policies, action, page), f"{role} may not {action} a page source"
        assert not iam.allows(policies, "s3:DeleteObject", upload), f"{role} may delete what people uploaded"
