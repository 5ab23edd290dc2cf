"""A replaced image's paths are invalidated in the stage's CloudFront distribution (moto's), once per version."""

from __future__ import annotations

import logging

import boto3
import pytest

from app import cdn
from app.events import handle_s3_event
from tests.helpers import photo


@pytest.fixture
def distribution(cloud, monkeypatch) -> str:
    """A distribution in front of the tiles bucket, named in CDN_DISTRIBUTION_ID as provisioning writes it."""
    config = {
        "CallerReference": "tiles",
        "Comment": "tiles",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "tiles",
                    "DomainName": "tiler-tiles.s3.amazonaws.com",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                }
            ],
        },
        "DefaultCacheBehavior": {"TargetOriginId": "tiles", "ViewerProtocolPolicy": "redirect-to-https"},
    }
    found = boto3.client("cloudfront").create_distribution(DistributionConfig=config)["Distribution"]["Id"]
    monkeypatch.setenv("CDN_DISTRIBUTION_ID", found)
    return found


def invalidations(distribution_id: str) -> list[dict]:
    client = boto3.client("cloudfront")
    listed = client.list_invalidations(DistributionId=distribution_id)["InvalidationList"].get("Items") or []
    return [
        client.get_invalidation(DistributionId=distribution_id, Id=item["Id"])["Invalidation"]["InvalidationBatch"]
        for item in listed
    ]


def _convert(cloud, key: str, image) -> str:
    etag = cloud.upload(key, image)
    for event in cloud.events():
        handle_s3_event(event)
    return etag


def test_only_a_replaced_image_is_invalidated_and_a_retry_asks_the_same(cloud, distribution):
    _convert(cloud, "maps/plan.jpg", photo(700, 500))
    assert invalidations(distribution) == [], "a first version has nothing cached to drop"
    _convert(cloud, "maps/plan.jpg", photo(600, 400))
    (batch,) = invalidations(distribution)
    assert batch["Paths"]["Items"] == ["/maps/plan.dzi", "/maps/plan_files/*", "/maps/plan/*", "/iiif/2/maps/plan/*"]
    record = cloud.record("maps/plan")
    assert record["replaces"] and record["replaces"] != record["source"]["etag"], "the record names the replaced"

    cdn.invalidate(distribution, "maps/plan", record["source"]["etag"])  # what a retried job of this version sends
    assert len({b["CallerReference"] for b in invalidations(distribution)}) == 1, (
        "the same image and version make the same CallerReference: CloudFront does the work once"
    )
    cdn.invalidate(distribution, "maps/plan", '"another-version"')
    assert len({b["CallerReference"] for b in invalidations(distribution)}) == 2


def test_a_replacement_converted_by_batch_is_invalidated_too(cloud, distribution, monkeypatch):
    """The Batch job finds the queued record of its own version, not the done one it replaces."""
    from batch_fallback.__main__ import main as batch_main

    _convert(cloud, "big.jpg", photo(700, 500))
    queue, definition = cloud.enable_batch()
    for name, value in {
        "BATCH_JOB_QUEUE": queue,
        "BATCH_JOB_DEFINITION": definition,
        "LAMBDA_MAX_PIXELS": "1000",
    }.items():
        monkeypatch.setenv(name, value)
    etag = _convert(cloud, "big.jpg", photo(600, 400))
    assert cloud.record("big")["status"] == "queued" and invalidations(distribution) == []
    assert batch_main(["--bucket", "tiler-source", "--key", "big.jpg", "--etag", etag]) == 0
    assert cloud.record("big")["status"] == "done"
    assert [b["Paths"]["Items"][0] for b in invalidations(distribution)] == ["/big.dzi"]


def test_a_failed_invalidation_is_logged_and_the_image_still_published(cloud, distribution, monkeypatch, caplog):
    _convert(cloud, "plan.jpg", photo(700, 500))
    monkeypatch.setenv("CDN_DISTRIBUTION_ID", "ENOSUCHDISTRIBUTION")
    with caplog.at_level(logging.WARNING, logger="app.jobs"):
        _convert(cloud, "plan.jpg", photo(600, 400))
    assert cloud.record("plan")["status"] == "done"
    assert "aws cloudfront create-invalidation --distribution-id ENOSUCHDISTRIBUTION --paths /plan.dzi" in caplog.text


def test_a_withdrawn_image_is_invalidated(cloud, distribution):
    _convert(cloud, "maps/plan.jpg", photo(700, 500))
    cloud.s3.delete_object(Bucket="tiler-source", Key="maps/plan.jpg")
    for event in cloud.events():
        assert handle_s3_event(event)["statuses"] == ["withdrawn"]
    (batch,) = invalidations(distribution)
    assert batch["Paths"]["Items"] == ["/maps/plan.dzi", "/maps/plan_files/*", "/maps/plan/*", "/iiif/2/maps/plan/*"]
