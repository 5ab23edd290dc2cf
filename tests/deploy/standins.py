"""What a viewer and a browser meet on AWS, stood in for on 127.0.0.1 in front of the moto server.

moto has no edge and no API Gateway endpoint to call, and its bucket-policy
evaluation ignores service principals and the request context (the tests turn
it off: see conftest). ``Edge`` is CloudFront, or S3's anonymous endpoint when
the stage has no distribution: it reads the distribution's configuration and
the bucket's policy and Block Public Access (the bucket's and the account's)
from moto at every request, and decides as AWS documents it, for the statement
forms provisioning writes; any other condition operator raises, so no test can
pass on a form the stand-in does not understand. ``ApiGateway`` is Zappa's REST
API: it assumes the function's role to invoke it, as the integration's
Credentials, and answers 500 when that role does not let it.
"""

from __future__ import annotations

import fnmatch
import json
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from botocore.exceptions import ClientError
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from app.web import create_app
from config import Settings
from tooling.deploy import iam
from tooling.deploy.aws import Aws, error_code
from tooling.deploy.cdn import CORS_S3_ORIGIN, CORS_WITH_PREFLIGHT
from tooling.local_s3 import LocalServer

CORS_REQUEST_HEADERS = ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")
# CORS-With-Preflight's headers; it does not override the origin's own ("OriginOverride": false)
ADDED_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT",
    "Access-Control-Allow-Headers": "*",
}
# operator: (does the request's value match the policy's, is the operator negated)
OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (operator.eq, False),
    "StringNotEquals": (operator.eq, True),
    "ArnEquals": (operator.eq, False),
    "ArnLike": (fnmatch.fnmatchcase, False),
}


@dataclass(frozen=True)
class Caller:
    """Who reads the bucket: anonymous (no service), or a service principal with its request context."""

    service: str | None = None
    context: dict[str, str] = field(default_factory=dict)  # condition keys, lower-cased


def serve(app: Callable, name: str) -> LocalServer:
    return LocalServer(make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet), name)


class Edge:
    """CloudFront in front of the stage's tiles bucket (S3's own anonymous endpoint when it has no distribution)."""

    def __init__(self, environment: Callable[[], dict[str, str]], region: str) -> None:
        self.environment, self.aws = environment, Aws(region)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        return self.answer(Request(environ))(environ, start_response)

    def answer(self, request: Request) -> Response:
        route = self._route()
        if route is None:
            return _access_denied()  # a disabled distribution
        bucket, caller, forwards, adds = route
        key = request.path.lstrip("/")
        if request.method == "OPTIONS":
            answer = self._preflight(
                bucket, key, {h: request.headers[h] for h in CORS_REQUEST_HEADERS if forwards and h in request.headers}
            )
        elif request.method in ("GET", "HEAD"):
            answer = self._read(bucket, key, caller, request.method == "GET")
        else:
            return Response(status=403)
        if adds and "Origin" in request.headers:
            added = ADDED_CORS if request.method == "OPTIONS" else {"Access-Control-Allow-Origin": "*"}
            for name, value in added.items():
                answer.headers.setdefault(name, value)
        return answer

    def _route(self) -> tuple[str, Caller, bool, bool] | None:
        """(bucket, who reads it, CORS request headers forwarded, CORS headers added) or None when disabled."""
        environment = self.environment()
        distribution_id = environment.get("CDN_DISTRIBUTION_ID")
        if not distribution_id:
            return environment["TILES_BUCKET"], Caller(), True, False
        found = self.aws.client("cloudfront").get_distribution(Id=distribution_id)["Distribution"]
        config = found["DistributionConfig"]
        if not config["Enabled"]:
            return None
        origin, behaviour = config["Origins"]["Items"][0], config["DefaultCacheBehavior"]
        signed = Caller(
            "cloudfront.amazonaws.com", {"aws:sourcearn": found["ARN"], "aws:sourceaccount": self.aws.account}
        )
        return (
            origin["DomainName"].split(".s3.")[0],
            signed if origin.get("OriginAccessControlId") else Caller(),
            behaviour.get("OriginRequestPolicyId") == CORS_S3_ORIGIN,
            behaviour.get("ResponseHeadersPolicyId") == CORS_WITH_PREFLIGHT,
        )

    def _read(self, bucket: str, key: str, caller: Caller, body: bool) -> Response:
        if not may_read(self.aws, bucket, key, caller):
            return _access_denied()
        try:
            found = self.aws.s3.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error_code(error) != "NoSuchKey":
                raise
            return Response(status=404)
        return Response(found["Body"].read() if body else b"", 200, content_type=found["ContentType"])

    def _preflight(self, bucket: str, key: str, headers: dict[str, str]) -> Response:
        if "Origin" not in headers:
            return Response(b"Insufficient information. Origin request header needed.", 400)  # as S3 answers
        answer = requests.options(f"{self.aws.s3.meta.endpoint_url}/{bucket}/{quote(key)}", headers=headers, timeout=10)
        return Response(
            answer.content,
            answer.status_code,
            {k: v for k, v in answer.headers.items() if k.lower().startswith("access-control-")},
        )


def may_read(aws: Aws, bucket: str, key: str, caller: Caller) -> bool:
    """S3's decision on s3:GetObject: an explicit Deny wins, then an Allow; RestrictPublicBuckets (the bucket's or
    the account's) keeps anonymous callers out of a bucket whose access only a public policy grants."""
    if caller.service is None and _restricted(aws, bucket):
        return False
    try:
        statements = json.loads(aws.s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    except ClientError as error:
        if error_code(error) != "NoSuchBucketPolicy":
            raise
        statements = []
    resource = f"arn:aws:s3:::{bucket}/{key}"
    applying = [
        s
        for s in statements
        if _principal(s["Principal"], caller)
        and _listed_match(s["Action"], "s3:GetObject")
        and _listed_match(s["Resource"], resource)
        and _conditions(s.get("Condition", {}), caller.context)
    ]
    return not any(s["Effect"] == "Deny" for s in applying) and any(s["Effect"] == "Allow" for s in applying)


class ApiGateway:
    """Zappa's REST API at /STAGE: API Gateway assumes the function's role to invoke it (here, the dashboard's
    Flask app with the stage's settings), and answers 500 when the role does not trust it or may not invoke."""

    def __init__(self, stage_name: str, function: str, environment: dict[str, str], region: str) -> None:
        self.prefix, self.function, self.aws = f"/{stage_name}", function, Aws(region)
        self.app = create_app(Settings.from_env(environment))

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        function = self.aws.lambda_.get_function_configuration(FunctionName=self.function)
        found = iam.role_documents(self.aws, function["Role"])
        if found is None or not (
            iam.trusts(found[0], "apigateway.amazonaws.com")
            and iam.allows(found[1], "lambda:InvokeFunction", function["FunctionArn"])
        ):
            return Response(b'{"message": "Internal server error"}', 500, content_type="application/json")(
                environ, start_response
            )
        if not environ["PATH_INFO"].startswith(self.prefix + "/"):
            return Response(b'{"message":"Forbidden"}', 403)(environ, start_response)
        environ = {**environ, "PATH_INFO": environ["PATH_INFO"][len(self.prefix) :], "SCRIPT_NAME": self.prefix}
        return self.app(environ, start_response)


def _restricted(aws: Aws, bucket: str) -> bool:
    reads = [
        lambda: aws.s3.get_public_access_block(Bucket=bucket),
        lambda: aws.client("s3control").get_public_access_block(AccountId=aws.account),
    ]
    for read in reads:
        try:
            if read()["PublicAccessBlockConfiguration"].get("RestrictPublicBuckets"):
                return True
        except ClientError as error:
            if error_code(error) != "NoSuchPublicAccessBlockConfiguration":
                raise
    return False


def _principal(principal: Any, caller: Caller) -> bool:
    if principal == "*" or principal == {"AWS": "*"}:
        return True
    return caller.service is not None and caller.service in _listed(principal.get("Service"))


def _conditions(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    """Every operator's every key holds; a key missing from the request makes a negated operator true and any
    other false (the IAM User Guide's "Condition operators")."""
    for name, pairs in condition.items():
        matches, negated = OPERATORS[name]
        for key, values in pairs.items():
            actual = context.get(key.lower())
            holds = negated if actual is None else any(matches(actual, v) for v in _listed(values)) != negated
            if not holds:
                return False
    return True


def _listed_match(patterns: Any, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in _listed(patterns))


def _listed(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _access_denied() -> Response:
    return Response(
        b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", 403, content_type="application/xml"
    )
