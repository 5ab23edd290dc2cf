"""The doctor against moto over HTTP: a healthy stage passes, each kind of breakage is flagged with its fix.

The diagnostic invocation runs the real ``app.diagnostics.report`` the way
Zappa's handler runs a command (moto cannot run a function without Docker);
one test lets moto itself answer, and the exiftool check must then not pass.
"""

from __future__ import annotations

import json

from app.__main__ import main
from config import Settings
from tooling.deploy import queues
from tooling.deploy.checks.buckets import preflight
from tooling.deploy.checks.function import ephemeral_needed_mb


def statuses(checks):
    return {name: check.status for name, check in checks.items()}


def failing(checks):
    return {name for name, check in checks.items() if not check.passed}


def test_a_healthy_stage_passes_every_check(deployed):
    checks = deployed.doctor()
    assert failing(checks) == set(), "\n".join(deployed.output)
    assert deployed.output[-1] == f"All {len(checks)} checks passed."
    assert "exiftool" in checks["exiftool in the function"].detail
    assert "no key filter" in checks["source notification"].detail
    assert "failures reported per message" in checks["event source mapping"].detail


def test_a_broken_deployment_is_flagged_line_by_line(deployed):
    aws, names = deployed.aws, deployed.names
    notification = deployed.s3_notification(names.source_bucket)
    notification["QueueConfigurations"][0]["Filter"] = {
        "Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}
    }
    aws.s3.put_bucket_notification_configuration(Bucket=names.source_bucket, NotificationConfiguration=notification)
    aws.s3.delete_bucket_cors(Bucket=names.tiles_bucket)
    aws.batch.update_job_queue(jobQueue=names.job_queue, state="DISABLED")

    checks = deployed.doctor()
    assert failing(checks) == {"source notification", "tiles CORS", "batch queue"}
    assert "filters keys: some uploads would get no event" in checks["source notification"].detail
    assert "python -m app provision dev" in checks["source notification"].fix
    assert "no CORS rules at all" in checks["tiles CORS"].detail
    assert "DISABLED" in checks["batch queue"].detail and "--state ENABLED" in checks["batch queue"].fix
    lines = [line for line in deployed.output if line.startswith("FAIL")]
    assert len(lines) == 3 and all("FIX: " in line for line in lines)
    assert deployed.output[-1] == f"{len(checks) - 3} of {len(checks)} checks passed."


def test_the_exit_status_is_non_zero_when_a_check_fails(deployed, capsys):
    deployed.aws.s3.delete_bucket_cors(Bucket=deployed.names.tiles_bucket)
    assert main(["doctor", "dev", "--settings-file", str(deployed.settings_file)]) == 1
    assert "FAIL    tiles CORS" in capsys.readouterr().out


def test_an_uninvokable_function_leaves_exiftool_unknown_never_ok(deployed):
    checks = deployed.doctor(invoke=None)  # moto answers the invocation itself: without Docker it cannot run it
    assert statuses(checks)["exiftool in the function"] == "UNKNOWN"
    assert statuses(checks)["function settings"] == "UNKNOWN"
    assert "could not run the diagnostic" in checks["exiftool in the function"].detail
    assert failing(checks) == {"exiftool in the function", "function settings"}


def test_a_function_without_exiftool_fails_with_the_container_fix(deployed):
    deployed.monkeypatch.setenv("EXIFTOOL_PATH", "/nonexistent/exiftool")  # as in a zip deployment: no Perl
    checks = deployed.doctor()
    assert failing(checks) == {"exiftool in the function"}
    assert "exiftool not found" in checks["exiftool in the function"].detail
    assert "--docker-image-uri" in checks["exiftool in the function"].fix


def test_function_limits_below_the_routing_limits_fail(deployment):
    deployment.provision_and_push()
    deployment.deploy_function(Timeout=300, MemorySize=1024, EphemeralStorage={"Size": 512})
    deployment.provision()
    checks = deployment.doctor()
    assert failing(checks) == {"function timeout", "function memory", "function /tmp"}
    needed = ephemeral_needed_mb(Settings.from_env(deployment.stage.environment))
    expected = f"512 MB, a source of LAMBDA_MAX_BYTES=1000000000 and its tiles need {needed} MB"
    assert expected in checks["function /tmp"].detail


def test_a_missing_function_fails_and_its_checks_are_unknown(deployment):
    deployment.provision_and_push()
    checks = deployment.doctor()
    assert checks["function"].status == "FAIL" and checks["function"].fix == "zappa deploy dev"
    assert {name for name, status in statuses(checks).items() if status == "UNKNOWN"} == {
        "no direct S3 invoke",
        "event source mapping",
        "function timeout",
        "function /tmp",
        "function memory",
        "exiftool in the function",
        "function settings",
        "dashboard",
        "API may invoke",
        "one image",
    }
    assert checks["source notification"].passed, "provision wires the bucket to the queue: uploads wait there"


def test_outputs_that_notify_the_function_fail(deployed):
    arn = deployed.aws.lambda_.get_function(FunctionName=deployed.names.function)["Configuration"]["FunctionArn"]
    wiring = {"LambdaFunctionConfigurations": [{"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}]}
    deployed.aws.s3.put_bucket_notification_configuration(
        Bucket=deployed.names.tiles_bucket, NotificationConfiguration=wiring
    )
    checks = deployed.doctor()
    assert failing(checks) == {"no self-trigger"}
    assert f"s3://{deployed.names.tiles_bucket} notifies" in checks["no self-trigger"].detail


def test_a_source_bucket_shared_with_the_outputs_fails(deployed):
    document = json.loads(deployed.settings_file.read_text())
    document["dev"]["environment_variables"]["TILES_BUCKET"] = deployed.names.source_bucket
    deployed.settings_file.write_text(json.dumps(document))
    checks = deployed.doctor()
    assert "no self-trigger" in failing(checks)
    assert "is also an output bucket" in checks["no self-trigger"].detail


def test_leftovers_of_zappas_s3_wiring_and_a_missing_image_fail(deployed):
    names, aws = deployed.names, deployed.aws
    aws.lambda_.add_permission(
        FunctionName=names.function,
        StatementId="s3-leftover",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=f"arn:aws:s3:::{names.source_bucket}",
    )
    notification = deployed.s3_notification(names.source_bucket)
    arn = aws.lambda_.get_function(FunctionName=names.function)["Configuration"]["FunctionArn"]
    notification["LambdaFunctionConfigurations"] = [{"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:Put"]}]
    aws.s3.put_bucket_notification_configuration(Bucket=names.source_bucket, NotificationConfiguration=notification)
    aws.ecr.batch_delete_image(repositoryName=names.repository, imageIds=[{"imageTag": "git-0123456789ab"}])
    checks = deployed.doctor()
    assert failing(checks) == {"no direct S3 invoke", "source notification", "batch image"}
    assert "every event would run twice" in checks["source notification"].detail
    assert checks["no direct S3 invoke"].fix == "python -m app provision dev removes them"
    assert checks["batch image"].fix == "scripts/push_batch_image.sh dev"


def test_a_queue_without_its_dead_letters_a_mapping_without_failure_reports_and_no_headroom_fail(deployed, monkeypatch):
    names, aws = deployed.names, deployed.aws
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=names.event_queue)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": "", "VisibilityTimeout": "900"})
    (mapping,) = aws.lambda_.list_event_source_mappings(FunctionName=names.function_arn)["EventSourceMappings"]
    aws.lambda_.update_event_source_mapping(UUID=mapping["UUID"], FunctionResponseTypes=[], Enabled=False)
    dead = sqs.get_queue_url(QueueName=names.dead_letter_queue)["QueueUrl"]
    sqs.send_message(QueueUrl=dead, MessageBody="{}")
    checks = deployed.doctor()
    assert failing(checks) == {"event queue", "event source mapping", "dead letters"}
    assert (
        "no redrive policy" in checks["event queue"].detail and "six function timeouts" in checks["event queue"].detail
    )
    assert "Disabled" in checks["event source mapping"].detail
    assert "would be deleted as done" in checks["event source mapping"].detail
    assert "python -m app redrive dev" in checks["dead letters"].fix
    deployed.provision()
    sqs.purge_queue(QueueUrl=dead)
    assert failing(deployed.doctor()) == set()

    monkeypatch.setattr(queues, "account_concurrency", lambda aws: 10)  # a new account's quota
    checks = deployed.doctor()
    assert failing(checks) == {"dashboard headroom"}
    assert "at most 10 of the account's 10" in checks["dashboard headroom"].detail
    assert "MAXIMUM_CONCURRENCY" in checks["dashboard headroom"].fix


def test_a_preflight_is_a_real_request_the_bucket_can_refuse(deployed):
    names, s3 = deployed.names, deployed.aws.s3
    url = f"{s3.meta.endpoint_url}/{names.tiles_bucket}/any/info.json"
    status, headers = preflight(url, "https://viewer.example.org", "GET")
    assert status == 200 and headers["access-control-allow-origin"] in ("*", "https://viewer.example.org")
    s3.put_bucket_cors(
        Bucket=names.tiles_bucket,
        CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["https://only.example.org"], "AllowedMethods": ["GET"]}]},
    )
    assert preflight(url, "https://viewer.example.org", "GET")[0] == 403
    assert deployed.doctor()["tiles CORS"].status == "FAIL"


def test_a_function_deployed_with_stale_settings_fails(deployed):
    """As after provisioning renamed buckets but before `zappa update`: the function still sees the old names."""

    def stale(name, payload):
        report = deployed.run_as_zappa(name, payload)
        return {**report, "settings": {**report["settings"], "source_bucket": "tiler-source"}}

    checks = deployed.doctor(invoke=stale)
    assert failing(checks) == {"function settings"}
    assert "source_bucket='tiler-source'" in checks["function settings"].detail
    assert checks["function settings"].fix == "zappa update dev"


def test_an_unprovisioned_stage_is_told_to_provision(deployment):
    checks = deployment.doctor()
    assert checks["stage settings"].status == "FAIL"
    assert checks["stage settings"].fix.startswith("python -m app provision dev")
    assert checks["tiles CORS"].status == "FAIL" and "does not exist" in checks["tiles CORS"].detail
    assert not [
        name
        for name, check in checks.items()
        if check.passed and name not in ("no self-trigger", "account public access", "dashboard headroom")
    ]


def test_a_job_definition_behind_the_stage_settings_fails(deployed):
    """As after changing TILE_SIZE in the stage and `zappa update` without provisioning again."""
    settings = json.loads(deployed.settings_file.read_text())
    settings["dev"]["environment_variables"]["TILE_SIZE"] = "256"
    deployed.settings_file.write_text(json.dumps(settings))
    checks = deployed.doctor()
    assert "batch settings" in failing(checks)
    assert "TILE_SIZE=256 in the stage, (default) in the job" in checks["batch settings"].detail
    assert checks["batch settings"].fix == "python -m app provision dev"
    deployed.provision()
    assert deployed.doctor()["batch settings"].passed


def test_lambda_and_batch_must_run_the_same_image(deployment):
    """`zappa update` with an older image, or a push without one: Lambda and Batch would convert differently."""
    deployment.provision_and_push()
    names = deployment.names
    older = deployment.push_image("git-0000000000aa", content="a")
    deployment.deploy_function(image=older)
    check = deployment.doctor()["one image"]
    assert (
        check.status == "FAIL" and older in check.detail and f"{names.repository_uri}:git-0123456789ab" in check.detail
    )
    assert check.fix == f"zappa update dev --docker-image-uri {names.repository_uri}:git-0123456789ab"
    deployment.aws.lambda_.update_function_code(
        FunctionName=names.function, ImageUri=f"{names.repository_uri}:git-0123456789ab"
    )
    assert deployment.doctor()["one image"].passed


def test_a_function_too_small_for_its_largest_jpeg_2000_fails_with_the_bound_that_fits(deployment):
    settings = json.loads(deployment.settings_file.read_text())
    settings["dev"].setdefault("environment_variables", {})["LAMBDA_MAX_JP2_PIXELS"] = "200000000"
    deployment.settings_file.write_text(json.dumps(settings, indent=4))
    deployment.provision_and_push()
    deployment.deploy_function()
    deployment.provision()
    checks = deployment.doctor()
    assert failing(checks) == {"function memory"}
    assert (
        "cannot decode a JPEG 2000 of LAMBDA_MAX_JP2_PIXELS=200,000,000 (about 4,000 MB)"
        in checks["function memory"].detail
    )
    assert "set LAMBDA_MAX_JP2_PIXELS to at most 150000000" in checks["function memory"].fix
