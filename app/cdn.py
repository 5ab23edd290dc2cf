"""The one CloudFront call the function makes: dropping a re-converted image's cached paths.

The edge keeps tiles for a day and descriptors for five minutes (their
Cache-Control), so a source replaced with new pixels would be served stale for
that long. The CallerReference comes from the image id and the new source
ETag: a retried job sends the same request, which CloudFront does not carry
out (or charge for) twice.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import boto3

from app.iiif.paths import V2_PREFIX


def paths(image_id: str) -> list[str]:
    """The Deep Zoom descriptor and tiles, and each IIIF version's folder (tiles, sizes, info.json, manifest):
    the 2.1 one too, whatever this deployment publishes now, since an earlier conversion may have had it."""
    return [f"/{image_id}.dzi", f"/{image_id}_files/*", f"/{image_id}/*", f"/{V2_PREFIX}{image_id}/*"]


def invalidate(distribution_id: str, image_id: str, etag: str) -> str:
    """Ask CloudFront to drop the image's paths; returns the invalidation's id."""
    items = paths(image_id)
    reference = "tiler-" + hashlib.sha256(f"{image_id}\n{etag}".encode()).hexdigest()[:40]
    answer = _client().create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={"Paths": {"Quantity": len(items), "Items": items}, "CallerReference": reference},
    )
    return answer["Invalidation"]["Id"]


@functools.cache
def _client() -> Any:
    """One client per process (CloudFront is global: boto3 reaches it in any region)."""
    return boto3.session.Session().client("cloudfront")
