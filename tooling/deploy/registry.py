"""The ECR repository the stage's image is pushed to (scripts/push_batch_image.sh): created, converged, deleted.

Tags are immutable: a ``git-COMMIT`` tag names the same bytes forever, which is what lets the job definition and
the function be compared by name and digest.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from tooling.deploy.aws import Aws, error_code
from tooling.deploy.changes import Change, updated_or_unchanged
from tooling.deploy.documents import repository_lifecycle
from tooling.deploy.stage import OWNER_TAG


def ensure_repository(aws: Aws, name: str, tags: dict[str, str]) -> Change:
    found = _repository(aws, name)
    if found is None:
        aws.ecr.create_repository(
            repositoryName=name,
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    parts = []
    if found is not None and found.get("imageTagMutability") != "IMMUTABLE":
        aws.ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="IMMUTABLE")
        parts.append("tags immutable")
    if _lifecycle(aws, name) != repository_lifecycle():
        aws.ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=json.dumps(repository_lifecycle()))
        parts.append("lifecycle")
    if found is None:
        return Change("created", "repository", name, "immutable tags, scan on push, keeps the last 10 untagged images")
    return updated_or_unchanged("repository", name, parts)


def delete_repository(aws: Aws, name: str, owner: str, force: bool) -> Change:
    found = _repository(aws, name)
    if found is None:
        return Change("absent", "repository", name)
    tags = {t["Key"]: t["Value"] for t in aws.ecr.list_tags_for_resource(resourceArn=found["repositoryArn"])["tags"]}
    if tags.get(OWNER_TAG) != owner:
        return Change("kept", "repository", name, f"not created by provisioning (no {OWNER_TAG}={owner} tag)")
    images = aws.ecr.describe_images(repositoryName=name).get("imageDetails", [])
    if images and not force:
        return Change("kept", "repository", name, f"holds {len(images)} image(s); --force deletes them too")
    aws.ecr.delete_repository(repositoryName=name, force=force)
    return Change("deleted", "repository", name)


def _repository(aws: Aws, name: str) -> dict[str, Any] | None:
    try:
        return aws.ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except ClientError as error:
        if error_code(error) == "RepositoryNotFoundException":
            return None
        raise


def _lifecycle(aws: Aws, name: str) -> dict[str, Any] | None:
    try:
        return json.loads(aws.ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])
    except ClientError as error:
        if error_code(error) == "LifecyclePolicyNotFoundException":
            return None
        raise
