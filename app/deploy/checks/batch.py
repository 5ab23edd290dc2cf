"""AWS Batch: the queue big images go to accepts jobs, its definition exists, and its image has been pushed."""
from __future__ import annotations

from botocore.exceptions import ClientError

from app.deploy.aws import error_code
from app.deploy.checks import Check, Context, fail, ok, unknown
from app.deploy.documents import CONVERSION_SETTINGS, conversion_settings


def job_queue(ctx: Context) -> Check:
    queue = ctx.names.job_queue
    provision = f"python -m app provision {ctx.stage.name}"
    found = ctx.aws.batch.describe_job_queues(jobQueues=[queue])["jobQueues"] if queue else []
    if not found:
        return fail(f"queue {queue or '(BATCH_JOB_QUEUE unset)'} does not exist: big images fail", provision)
    state, status = found[0]["state"], found[0]["status"]
    if (state, status) != ("ENABLED", "VALID"):
        return fail(f"{queue} is {state}/{status} ({found[0].get('statusReason', 'no reason given')}): "
                    "submitted jobs never start", f"{provision} (or aws batch update-job-queue --job-queue {queue} "
                    "--state ENABLED)")
    arns = [entry["computeEnvironment"] for entry in found[0]["computeEnvironmentOrder"]]
    environments = ctx.aws.batch.describe_compute_environments(computeEnvironments=arns)["computeEnvironments"]
    broken = [f"{e['computeEnvironmentName']} {e['state']}/{e['status']} ({e.get('statusReason', '')})"
              for e in environments if (e["state"], e["status"]) != ("ENABLED", "VALID")]
    if broken or not environments:
        return fail(f"{queue} is ENABLED/VALID but its compute environment is not: "
                    + ("; ".join(broken) or "none attached"), provision)
    return ok(f"{queue} is ENABLED and VALID, on {', '.join(e['computeEnvironmentName'] for e in environments)}")


def job_definition(ctx: Context) -> Check:
    latest = ctx.job_definition
    if latest is None:
        return fail(f"no ACTIVE revision of {ctx.names.job_definition or '(BATCH_JOB_DEFINITION unset)'}",
                    f"python -m app provision {ctx.stage.name}")
    return ok(f"{ctx.names.job_definition}:{latest['revision']} runs {latest['containerProperties']['image']}")


def job_settings(ctx: Context) -> Check:
    """Big images convert as the function converts the rest: same tile size, quality, outputs."""
    latest = ctx.job_definition
    if latest is None:
        return unknown("no job definition to compare", f"python -m app provision {ctx.stage.name}")
    job = {e["name"]: e["value"] for e in latest["containerProperties"].get("environment", [])}
    stage = conversion_settings(ctx.stage.environment)
    differing = [f"{name}={stage.get(name, '(default)')} in the stage, {job.get(name, '(default)')} in the job"
                 for name in CONVERSION_SETTINGS if stage.get(name) != job.get(name)]
    if differing:
        return fail("Batch would convert big images differently: " + "; ".join(differing),
                    f"python -m app provision {ctx.stage.name}")
    return ok("the job converts with the stage's settings"
              + (f" ({', '.join(f'{k}={v}' for k, v in stage.items())})" if stage else " (all defaults)"))


def image_pushed(ctx: Context) -> Check:
    latest = ctx.job_definition
    if latest is None:
        return unknown("no job definition to read the image from", f"python -m app provision {ctx.stage.name}")
    image = latest["containerProperties"]["image"]
    push = f"scripts/push_batch_image.sh {ctx.stage.name}"
    if ".dkr.ecr." not in image:
        return unknown(f"{image} is not in ECR; not checked", push)
    repository, _, tag = image.split("/", 1)[1].partition(":")
    try:
        ctx.aws.ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag or "latest"}])
    except ClientError as error:
        if error_code(error) not in ("ImageNotFoundException", "RepositoryNotFoundException"):
            raise
        return fail(f"{image} has not been pushed: Batch jobs cannot start", push)
    return ok(f"{image} is in ECR")


CHECKS = {"batch queue": job_queue, "batch job definition": job_definition, "batch settings": job_settings,
          "batch image": image_pushed}
