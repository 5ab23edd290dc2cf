"""A stage to provision, deploy, check and tear down on the embedded moto endpoint, over HTTP.

Each test starts from a reset endpoint and a copy of the repository's own
zappa_settings.json whose project name is unique, so every resource name is
too. ``deploy_function`` does what ``zappa deploy`` does to AWS that matters
here: the function with the stage's limits and role, and the queue's event
source mapping added by Zappa's own event-source code.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.awslambda import models as lambda_models
from moto.cloudfront import models as cloudfront_models
from moto.ecr import models as ecr_models
from moto.iam.access_control import PermissionResult
from moto.s3 import models as s3_models
from zappa.handler import LambdaHandler
from zappa.utilities import add_event_source

from tests.deploy import standins
from tooling.deploy import queues
from tooling.deploy.aws import Aws
from tooling.deploy.checks import Check
from tooling.deploy.doctor import doctor
from tooling.deploy.provision import Options, provision
from tooling.deploy.stage import Names, Stage, load_stage, stage_names
from tooling.deploy.teardown import teardown

REPO = Path(__file__).resolve().parents[2]
STAGE = "dev"


class Deployment:
    def __init__(self, settings_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.settings_file = settings_file
        self.monkeypatch = monkeypatch
        self.output: list[str] = []
        self.edge_url = self.api_url = ""  # the stand-ins' (see the fixture)

    @property
    def stage(self) -> Stage:
        return load_stage(STAGE, self.settings_file)

    @property
    def aws(self) -> Aws:
        return Aws(self.stage.region)

    @property
    def names(self) -> Names:
        return stage_names(self.stage, self.aws.account)

    def provision(self, **options: Any) -> list:
        self.output = []
        return provision(self.stage, Options(**options), out=self.output.append)

    def provision_and_push(self, **options: Any) -> list:
        """A first provision, the image pushed, then provision pointing Batch at it: scripts/push_batch_image.sh."""
        self.provision(**options)
        return self.provision(image=self.push_image(), **options)

    def doctor(self, invoke: Any = "zappa", **urls: str) -> dict[str, Check]:
        """Every check by name. By default the diagnostic runs here, the way Zappa's handler runs a command, and
        the public side is reached through the stand-ins for CloudFront (or S3) and API Gateway."""
        self.output = []
        urls = {"public_base_url": self.edge_url, "dashboard_url": self.api_url, **urls}
        checks = doctor(
            self.stage, invoke=self.run_as_zappa if invoke == "zappa" else invoke, out=self.output.append, **urls
        )
        return {check.name: check for check in checks}

    def teardown(self, force: bool = False) -> list:
        self.output = []
        return teardown(self.stage, force=force, out=self.output.append)

    def deploy_function(self, image: str | None = None, **overrides: Any) -> str:
        """A zip package, or with ``image`` what ``zappa deploy --docker-image-uri image`` creates."""
        stage, names = self.stage, self.names
        settings = stage.settings
        config = {
            "MemorySize": settings["memory_size"],
            "Timeout": settings["timeout_seconds"],
            "EphemeralStorage": settings["ephemeral_storage"],
            **overrides,
        }
        if image:
            package = {"PackageType": "Image", "Code": {"ImageUri": image}}
        else:
            code = io.BytesIO()
            with zipfile.ZipFile(code, "w") as archive:
                archive.writestr("handler.py", "def lambda_handler(event, context):\n    return {}\n")
            package = {
                "Runtime": settings["runtime"],
                "Handler": "handler.lambda_handler",
                "Code": {"ZipFile": code.getvalue()},
            }
        arn = self.aws.lambda_.create_function(
            FunctionName=names.function, Role=settings["role_arn"], **package, **config
        )["FunctionArn"]
        session = boto3.Session(region_name=stage.region)
        for event in settings["events"]:
            if "event_source" in event:  # a schedule (the sweep) is an EventBridge rule, which nothing here checks
                add_event_source(event["event_source"], arn, event["function"], session)
        return arn

    def push_image(self, tag: str = "git-0123456789ab", content: str = "0") -> str:
        """What scripts/push_batch_image.sh pushes (a manifest standing in for the build); its URI."""
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 2,
                "digest": "sha256:" + content * 64,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1,
                    "digest": "sha256:" + content * 64,
                }
            ],
        }  # moto's digest is made of the layers
        self.aws.ecr.put_image(repositoryName=self.names.repository, imageManifest=json.dumps(manifest), imageTag=tag)
        return f"{self.names.repository_uri}:{tag}"

    def run_as_zappa(self, function_name: str, payload: dict[str, Any]) -> Any:
        """What the deployed function answers: Zappa's handler imports the command and runs it, with the
        stage's environment_variables set as its handler sets them; the answer goes through JSON as Lambda's."""
        for name, value in self.stage.environment.items():
            self.monkeypatch.setenv(name, value)
        command = LambdaHandler.import_module_and_get_function(payload["command"])
        return json.loads(json.dumps(LambdaHandler.run_function(command, payload, _Context())))

    def s3_notification(self, bucket: str) -> dict[str, Any]:
        answer = self.aws.s3.get_bucket_notification_configuration(Bucket=bucket)
        answer.pop("ResponseMetadata", None)
        return answer


class _Context:
    memory_limit_in_mb = 3008
    function_name = "test"


@pytest.fixture
def deployment(local_s3, tmp_path, monkeypatch) -> Iterator[Deployment]:
    local_s3.reset()
    _moto_as_aws(monkeypatch)
    settings = json.loads((REPO / "zappa_settings.json").read_text())
    settings[STAGE]["project_name"] = f"t{uuid.uuid4().hex[:8]}"
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(settings, indent=4))
    deployment = Deployment(path, monkeypatch)
    stage = deployment.stage
    edge = standins.Edge(lambda: deployment.stage.environment, stage.region)
    api = standins.ApiGateway(STAGE, stage.function_name, stage.environment, stage.region)
    with standins.serve(edge, "edge") as edge_server, standins.serve(api, "api-gateway") as api_server:
        deployment.edge_url, deployment.api_url = edge_server.url, f"{api_server.url}/{STAGE}"
        yield deployment


def _moto_as_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four things moto does not do as AWS does, set right for the length of a test (its server runs in this
    process): a function's image resolves to ECR's digest, a distribution's origin keeps its Origin Access Control,
    and bucket policies are not evaluated
    on GetObject (moto ignores service principals and the request context, so it would refuse the stage's own
    signed reads; standins.Edge evaluates the policies where viewers meet them)."""
    keep = cloudfront_models.Origin.__init__

    def origin(self: Any, origin: dict[str, Any]) -> None:
        keep(self, origin)
        self.origin_access_control_id = origin.get("OriginAccessControlId", "")
        self.s3_origin_config = origin.get("S3OriginConfig")

    monkeypatch.setattr(cloudfront_models.Origin, "__init__", origin)
    monkeypatch.setattr(s3_models.FakeBucket, "get_permission", lambda *_: PermissionResult.NEUTRAL)
    keep_code = lambda_models.LambdaFunction.get_code

    def get_code(self: Any) -> dict[str, Any]:
        """AWS resolves an image's tag to the digest ECR holds for it; moto makes one of its own."""
        answer = keep_code(self)
        code = answer.get("Code", {})
        if "ImageUri" in code:
            repository, _, tag = code["ImageUri"].split("/", 1)[1].partition(":")
            image = ecr_models.ecr_backends[self.account_id][self.region].repositories[repository]._get_image(tag, None)
            code["ResolvedImageUri"] = f"{code['ImageUri'].rsplit(':', 1)[0]}@{image.get_image_digest()}"
        return answer

    monkeypatch.setattr(lambda_models.LambdaFunction, "get_code", get_code)
    # moto has no GetAccountSettings: an account with AWS's default quota of 1,000 concurrent executions
    monkeypatch.setattr(queues, "account_concurrency", lambda aws: 1000)


@pytest.fixture
def deployed(deployment) -> Deployment:
    """A complete, healthy stage: provisioned, the function deployed with Zappa's wiring, the image pushed."""
    deployment.provision_and_push()
    deployment.deploy_function()
    deployment.provision()  # now that the function exists: the queue's event source mapping
    return deployment
