"""The one container image a stage runs, named so that Lambda and AWS Batch cannot drift apart.

An image is named by a commit tag (``REPO:git-COMMIT``, what
scripts/push_batch_image.sh pushes) or a digest (``REPO@sha256:...``), never by
a mutable tag such as ``latest``: the repository's tags are immutable, so the
job definition and ``zappa deploy --docker-image-uri`` given the same name run
the same bytes, and the doctor compares their digests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from tooling.deploy.aws import Aws, error_code
from tooling.deploy.stage import Names, StageError

MUTABLE_TAGS = ("latest",)


@dataclass(frozen=True)
class ImageName:
    repository_uri: str  # ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, uri: str) -> ImageName:
        if "@" in uri:
            repository, digest = uri.split("@", 1)
            return cls(repository, digest=digest)
        repository, colon, tag = uri.rpartition(":")
        if not colon or "/" in tag:  # no tag at all: docker means "latest"
            return cls(uri, tag="latest")
        return cls(repository, tag=tag)

    @property
    def repository(self) -> str:
        return self.repository_uri.split("/", 1)[1] if "/" in self.repository_uri else self.repository_uri

    @property
    def image_id(self) -> dict[str, str]:
        """The imageIds entry ECR's describe_images takes."""
        return {"imageDigest": self.digest} if self.digest else {"imageTag": self.tag}

    def __str__(self) -> str:
        return f"{self.repository_uri}@{self.digest}" if self.digest else f"{self.repository_uri}:{self.tag}"


def checked_image(aws: Aws, names: Names, uri: str, stage: str) -> ImageName:
    """``uri`` as a stage may use it: in the stage's repository, pinned, and pushed."""
    image = ImageName.parse(uri)
    if image.repository_uri != names.repository_uri:
        raise StageError(f"image {uri} is not in the stage's repository {names.repository_uri}")
    if image.tag in MUTABLE_TAGS:
        raise StageError(
            f"image {uri} names a moving tag: Lambda and Batch could run different code; use the "
            f"git-COMMIT tag or digest scripts/push_batch_image.sh {stage} prints"
        )
    if digest_of(aws, image) is None:
        raise StageError(f"image {uri} is not in ECR: push it first (scripts/push_batch_image.sh {stage})")
    return image


def digest_of(aws: Aws, image: ImageName) -> str | None:
    """The image's content digest in ECR, or None when it has not been pushed."""
    try:
        found = aws.ecr.describe_images(repositoryName=image.repository, imageIds=[image.image_id])["imageDetails"]
    except ClientError as error:
        if error_code(error) in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return None
        raise
    return found[0]["imageDigest"] if found else None


def function_image(code: dict[str, Any]) -> str | None:
    """From GetFunction's ``Code``: the digest-pinned URI Lambda resolved the image to at deploy time, else the URI
    it was given (None for a zip package)."""
    return code.get("ResolvedImageUri") or code.get("ImageUri")
