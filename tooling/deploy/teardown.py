"""``python -m app teardown STAGE``: remove what provisioning created, in the reverse order.

Only resources tagged ``tiler:stage=<function>`` (set when provisioning created them) are touched; buckets and the
image repository only when empty, unless ``--force``; the CloudFront distribution once it is disabled and deployed
(a second run, some 15 minutes after the first disabled it). While the stage's function is still deployed nothing
is removed: deleting its role and buckets under it would leave a function that fails on every event, so ``zappa
undeploy STAGE`` comes first.
"""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import ClientError

from tooling.deploy import alarms, queues
from tooling.deploy.aws import Aws, error_code
from tooling.deploy.batch import delete_batch
from tooling.deploy.buckets import delete_bucket
from tooling.deploy.cdn import delete_cdn
from tooling.deploy.changes import Change
from tooling.deploy.registry import delete_repository
from tooling.deploy.roles import delete_role
from tooling.deploy.stage import Stage, stage_names


class FunctionStillDeployed(Exception):
    """The stage's Lambda function exists: undeploy it first."""


def teardown(
    stage: Stage, force: bool = False, aws: Aws | None = None, out: Callable[[str], None] = print
) -> list[Change]:
    aws = aws or Aws(stage.region)
    names = stage_names(stage, aws.account)
    if _function_exists(aws, names.function):
        raise FunctionStillDeployed(
            f"function {names.function} is still deployed: run `zappa undeploy {stage.name}` "
            f"first, then this command again"
        )
    owner = names.function
    out(f"Tearing down stage {stage.name} (function {owner}) in {aws.region}, account {aws.account}")
    changes: list[Change] = []
    for change in [
        *delete_batch(aws, names, owner),
        *delete_cdn(aws, names.function, owner),
        *alarms.delete_alarms(aws, names, owner),
    ]:
        changes.append(change)
        out(change.line())
    removals: list[Callable[[], Change]] = [
        lambda: delete_repository(aws, names.repository, owner, force),
        lambda: queues.delete_queue(aws, names.event_queue, owner),
        lambda: queues.delete_queue(aws, names.dead_letter_queue, owner),
        *[
            lambda role=role: delete_role(aws, role, owner)
            for role in (names.lambda_role, names.job_role, names.execution_role)
        ],
        *[
            lambda bucket=bucket: delete_bucket(aws, bucket, owner, force)
            for bucket in (*names.buckets, names.deploy_bucket)
        ],
    ]
    for remove in removals:
        changes.append(remove())
        out(changes[-1].line())
    kept = [c for c in changes if c.action == "kept"]
    out(
        f"{len(kept)} resource(s) kept, see above."
        if kept
        else f"Stage {stage.name} is gone. Its settings in {stage.path} still name it: `python -m app provision "
        f"{stage.name}` brings it back."
    )
    return changes


def _function_exists(aws: Aws, name: str) -> bool:
    try:
        aws.lambda_.get_function(FunctionName=name)
        return True
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return False
        raise
