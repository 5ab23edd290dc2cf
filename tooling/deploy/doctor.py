"""``python -m app doctor STAGE``: verify a deployment, one line per check, with the fix for each failure.

Names come from the stage in zappa_settings.json (what ``zappa deploy`` gave
the function) and the function's from Zappa's rule, ``<project_name>-<stage>``.
The exit status is 0 only when every check passed; a check that could not be
carried out (the diagnostic invocation failed, access denied) is UNKNOWN and
counts as not passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from botocore.exceptions import BotoCoreError, ClientError

from tooling.deploy.aws import Aws, error_code
from tooling.deploy.checks import Check, Context, Invoke, fail, unknown
from tooling.deploy.checks import batch as batch_checks
from tooling.deploy.checks import buckets as bucket_checks
from tooling.deploy.checks import function as function_checks
from tooling.deploy.checks import public as public_checks
from tooling.deploy.checks import queues as queue_checks
from tooling.deploy.checks import wiring as wiring_checks
from tooling.deploy.stage import Stage, stage_names

CHECKS = {
    **wiring_checks.CHECKS,
    **queue_checks.CHECKS,
    **function_checks.CHECKS,
    **bucket_checks.CHECKS,
    **public_checks.CHECKS,
    **batch_checks.CHECKS,
}


def doctor(
    stage: Stage,
    aws: Aws | None = None,
    invoke: Invoke | None = None,
    out: Callable[[str], None] = print,
    public_base_url: str = "",
    dashboard_url: str = "",
) -> list[Check]:
    """``public_base_url`` and ``dashboard_url`` replace the stage's tiles URL and the API's URL."""
    aws = aws or Aws(stage.region)
    context = Context(stage, stage_names(stage, aws.account), aws, invoke, public_base_url, dashboard_url)
    out(f"Checking stage {stage.name} (function {context.names.function}) in {aws.region}, account {aws.account}")
    results = []
    for name, check in CHECKS.items():
        results.append(replace(_run(check, context), name=name))
        out(results[-1].line())
    failed = [r for r in results if not r.passed]
    out(
        f"{len(results) - len(failed)} of {len(results)} checks passed."
        if failed
        else f"All {len(results)} checks passed."
    )
    return results


def _run(check: Callable[[Context], Check], context: Context) -> Check:
    """One check; an AWS error becomes a FAIL (missing bucket) or an UNKNOWN line instead of a traceback."""
    try:
        return check(context)
    except ClientError as error:
        if error_code(error) == "NoSuchBucket":
            return fail(
                f"bucket {error.response['Error'].get('BucketName', '')} does not exist".replace("  ", " "),
                f"python -m app provision {context.stage.name}",
            )
        return unknown(f"could not check: {error}", "run with credentials that may read this resource")
    except BotoCoreError as error:
        return unknown(f"could not check: {error}")
