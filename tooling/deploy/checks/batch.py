"""AWS Batch: the queue big images go to accepts jobs, its definition exists, and its image has been pushed."""

from __future__ import annotations

from tooling.deploy import images
from tooling.deploy.checks import Check, Context, fail, ok, unknown
from tooling.deploy.documents import CONVERSION_SETTINGS, conversion_settings


def job_queue(ctx: Context) -> Check:
    queue = ctx.names.job_queue
    provision = f"python -m app provision {ctx.stage.name}"
    found = ctx.aws.batch.describe_job_queues(jobQueues=[queue])["jobQueues"] if queue else []
    if not found:
        return fail(f"queue {queue or '(BATCH_JOB_QUEUE unset)'} does not exist: big images fail", provision)
    state, status = found[0]["state"], found[0]["status"]
    if (state, status) != ("ENABLED", "VALID"):
        return fail(
            f"{queue} is {state}/{status} ({found[0].get('statusReason', 'no reason given')}): "
            "submitted jobs never start",
            f"{provision} (or aws batch update-job-queue --job-queue {queue} --state ENABLED)",
        )
    arns = [entry["computeEnvironment"] for entry in found[0]["computeEnvironmentOrder"]]
    environments = ctx.aws.batch.describe_compute_environments(computeEnvironments=arns)["computeEnvironments"]
    broken = [
        f"{e['computeEnvironmentName']} {e['state']}/{e['status']} ({e.get('statusReason', '')})"
        for e in environments
        if (e["state"], e["status"]) != ("ENABLED", "VALID")
    ]
    if broken or not environments:
        return fail(
            f"{queue} is ENABLED/VALID but its compute environment is not: " + ("; ".join(broken) or "none attached"),
            provision,
        )
    return ok(f"{queue} is ENABLED and VALID, on {', '.join(e['computeEnvironmentName'] for e in environments)}")


def job_definition(ctx: Context) -> Check:
    latest = ctx.job_definition
    if latest is None:
        return fail(
            f"no ACTIVE revision of {ctx.names.job_definition or '(BATCH_JOB_DEFINITION unset)'}",
            f"python -m app provision {ctx.stage.name}",
        )
    return ok(f"{ctx.names.job_definition}:{latest['revision']} runs {latest['containerProperties']['image']}")


def job_settings(ctx: Context) -> Check:
    """Big images convert as the function converts the rest: same tile size, quality, outputs."""
    latest = ctx.job_definition
    if latest is None:
        return unknown("no job definition to compare", f"python -m app provision {ctx.stage.name}")
    job = {e["name"]: e["value"] for e in latest["containerProperties"].get("environment", [])}
    stage = conversion_settings(ctx.stage.environment)
    differing = [
        f"{name}={stage.get(name, '(default)')} in the stage, {job.get(name, '(default)')} in the job"
        for name in CONVERSION_SETTINGS
        if stage.get(name) != job.get(name)
    ]
    if differing:
        return fail(
            "Batch would convert big images differently: " + "; ".join(differing),
            f"python -m app provision {ctx.stage.name}",
        )
    return ok(
        "the job converts with the stage's settings"
        + (f" ({', '.join(f'{k}={v}' for k, v in stage.items())})" if stage else " (all defaults)")
    )


def image_pushed(ctx: Context) -> Check:
    latest = ctx.job_definition
    if latest is None:
        return unknown("no job definition to read the image from", f"python -m app provision {ctx.stage.name}")
    uri, push = latest["containerProperties"]["image"], f"scripts/push_batch_image.sh {ctx.stage.name}"
    if ".dkr.ecr." not in uri:
        return unknown(f"{uri} is not in ECR; not checked", push)
    image = images.ImageName.parse(uri)
    if image.tag in images.MUTABLE_TAGS:
        return fail(
            f"the job definition runs {uri}, a moving tag: every push changes Batch at once, Lambda only on "
            "zappa update",
            push,
        )
    if images.digest_of(ctx.aws, image) is None:
        return fail(f"{uri} has not been pushed: Batch jobs cannot start", push)
    return ok(f"{uri} is in ECR")


def one_image(ctx: Context) -> Check:
    """Lambda and Batch run the same bytes: the function's resolved image digest is the job definition's."""
    latest, function = ctx.job_definition, ctx.function
    if latest is None or function is None:
        return unknown(
            "needs both the function and the job definition",
            f"python -m app provision {ctx.stage.name} and zappa deploy {ctx.stage.name} --docker-image-uri URI",
        )
    batch_uri, lambda_uri = latest["containerProperties"]["image"], images.function_image(ctx.code)
    if lambda_uri is None:
        return ok(f"the function is a zip package (its metadata without exiftool); Batch runs {batch_uri}")
    batch_digest = images.digest_of(ctx.aws, images.ImageName.parse(batch_uri)) if ".dkr.ecr." in batch_uri else None
    lambda_image = images.ImageName.parse(lambda_uri)
    lambda_digest = lambda_image.digest or images.digest_of(ctx.aws, lambda_image)
    if batch_digest is None or lambda_digest != batch_digest:
        return fail(
            f"Lambda runs {ctx.code.get('ImageUri', lambda_uri)} ({lambda_digest}), Batch runs {batch_uri} "
            f"({batch_digest or 'not in ECR'}): big images would convert with other code",
            f"zappa update {ctx.stage.name} --docker-image-uri {batch_uri}",
        )
    return ok(f"Lambda and Batch both run {batch_uri} ({batch_digest[:19]})")


CHECKS = {
    "batch queue": job_queue,
    "batch job definition": job_definition,
    "batch settings": job_settings,
    "batch image": image_pushed,
    "one image": one_image,
}
