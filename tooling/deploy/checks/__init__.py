"""The doctor's checks: each returns one ``Check``, a line that says what was found and, on failure, the fix.

A check that could not be carried out is UNKNOWN, never ok: the doctor exits
non-zero unless every check has positively passed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from app.diagnostics import MARKER
from config import Settings
from tooling.deploy.aws import Aws, error_code
from tooling.deploy.batch import newest_job_definition
from tooling.deploy.stage import Names, Stage

Invoke = Callable[[str, dict[str, Any]], Any]  # (function name, payload) -> the function's JSON answer


class CannotInvoke(Exception):
    """The diagnostic invocation did not produce a report."""


@dataclass(frozen=True)
class Check:
    status: str  # ok | FAIL | UNKNOWN
    detail: str
    fix: str = ""
    name: str = ""  # set by the doctor from the table of checks

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        text = f"{self.status:<7} {self.name}: {self.detail}"
        return text if self.passed or not self.fix else f"{text}  FIX: {self.fix}"


def ok(detail: str) -> Check:
    return Check("ok", detail)


def fail(detail: str, fix: str) -> Check:
    return Check("FAIL", detail, fix)


def unknown(detail: str, fix: str = "") -> Check:
    return Check("UNKNOWN", detail, fix)


@dataclass
class Context:
    """What every check may look at; the function, the job definition and the diagnostic report are fetched
    once, when first needed."""

    stage: Stage
    names: Names
    aws: Aws
    invoke: Invoke | None = None
    public_base_url: str = ""  # where viewers read the tiles (default: the stage's PUBLIC_BASE_URL)
    dashboard_url: str = ""  # the dashboard's base URL (default: the stage's REST API in API Gateway)
    limits: Settings = field(init=False)

    def __post_init__(self) -> None:
        self.limits = Settings.from_env(self.stage.environment)  # what the function will be configured with
        self.public_base_url = (self.public_base_url or self.stage.environment.get("PUBLIC_BASE_URL", "")).rstrip("/")

    @functools.cached_property
    def function(self) -> dict[str, Any] | None:
        try:
            return self.aws.lambda_.get_function_configuration(FunctionName=self.names.function)
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise

    @functools.cached_property
    def code(self) -> dict[str, Any]:
        """Where the function's code comes from: ``ImageUri`` and ``ResolvedImageUri`` for an image."""
        return self.aws.lambda_.get_function(FunctionName=self.names.function)["Code"]

    @functools.cached_property
    def job_definition(self) -> dict[str, Any] | None:
        """The newest ACTIVE revision of the stage's Batch job definition, or None."""
        return newest_job_definition(self.aws, self.names.job_definition)

    @functools.cached_property
    def report(self) -> tuple[dict[str, Any] | None, str]:
        """(the function's diagnostic report, "") or (None, why there is none)."""
        if self.function is None:
            return None, f"function {self.names.function} is not deployed"
        try:
            answer = (self.invoke or self._invoke)(self.names.function, {"command": "app.diagnostics.report"})
        except (CannotInvoke, ClientError) as error:
            return None, f"could not run the diagnostic in the function ({error})"
        if not isinstance(answer, dict) or answer.get("marker") != MARKER:
            return None, f"the function did not answer with a diagnostic report: {str(answer)[:160]!r}"
        return answer, ""

    def _invoke(self, name: str, payload: dict[str, Any]) -> Any:
        client = self.aws.session.client("lambda", config=Config(read_timeout=300, retries={"max_attempts": 1}))
        answer = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
        body = answer["Payload"].read().decode("utf-8", "replace")
        if answer.get("FunctionError"):
            raise CannotInvoke(f"{answer['FunctionError']} error: {body[:200]}")
        try:
            return json.loads(body)
        except ValueError:
            raise CannotInvoke(f"not JSON: {body[:200]!r}") from None
