"""CloudFront in front of the tiles bucket: an Origin Access Control and one distribution, read, compared, updated.

The bucket stays private under any Block Public Access setting, the account's
included: CloudFront signs its requests to the bucket's regional endpoint
(Origin Access Control, SigV4) and the bucket policy lets only this
distribution read. The distribution is found by its comment, which names the
stage; tear-down deletes it only when it also carries the stage's owner tag.
CloudFront takes about 15 minutes to deploy a change, and deletes a
distribution only once it is disabled and deployed, so tear-down may take two
runs rather than wait.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tooling.deploy.aws import Aws
from tooling.deploy.changes import Change, updated_or_unchanged
from tooling.deploy.documents import covers
from tooling.deploy.stage import OWNER_TAG, Names

ORIGIN_ID = "tiles"
PRICE_CLASS = "PriceClass_100"  # edges in North America, Europe and Israel: the cheapest class
# AWS managed policies, attached by id (the same in every account):
# CachingOptimized (cache policy): the key is the path alone, gzip and brotli, and the objects' own Cache-Control
# decides how long (tiles a day, descriptors five minutes).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
# CORS-S3Origin (origin request policy): forwards Origin and Access-Control-Request-Method/-Headers, so S3 answers
# a viewer's preflight from the bucket's CORS rules.
CORS_S3_ORIGIN = "88a5eaf4-2fd4-4709-b370-b4c650ea3fcf"
# CORS-With-Preflight (response headers policy): Access-Control-Allow-Origin * on every answer to a CORS request,
# cached ones included (the cache key has no Origin, so a tile first fetched without one is served to all).
CORS_WITH_PREFLIGHT = "5cc3b908-e619-4b99-88e5-2cf7f45965bd"
_LABELS = {
    "Comment": "comment",
    "Enabled": "enabled",
    "Aliases": "domain",
    "Origins": "origin",
    "DefaultCacheBehavior": "cache behaviour",
    "PriceClass": "price class",
    "HttpVersion": "HTTP versions",
    "IsIPV6Enabled": "IPv6",
    "ViewerCertificate": "certificate",
}


@dataclass(frozen=True)
class Distribution:
    id: str
    arn: str
    domain_name: str  # its own, *.cloudfront.net
    url: str  # https:// and the custom domain, or its own


def ensure_origin_access_control(aws: Aws, function: str) -> tuple[Change, str]:
    """The stage's OAC (CloudFront signs every request to S3 with SigV4) and its id."""
    cloudfront, wanted = aws.client("cloudfront"), _oac_config(function)
    found = _origin_access_control(aws, function)
    if found is None:
        made = cloudfront.create_origin_access_control(OriginAccessControlConfig=wanted)["OriginAccessControl"]
        return Change("created", "origin access control", wanted["Name"], "SigV4, signs every request"), made["Id"]
    current = cloudfront.get_origin_access_control(Id=found["Id"])
    if covers(current["OriginAccessControl"]["OriginAccessControlConfig"], wanted):
        return Change("unchanged", "origin access control", wanted["Name"]), found["Id"]
    cloudfront.update_origin_access_control(Id=found["Id"], IfMatch=current["ETag"], OriginAccessControlConfig=wanted)
    return Change("updated", "origin access control", wanted["Name"], "signing"), found["Id"]


def ensure_distribution(
    aws: Aws, names: Names, oac_id: str, domain: str | None, certificate_arn: str | None, tags: dict[str, str]
) -> tuple[Change, Distribution]:
    """The distribution serving the tiles bucket; ``domain`` and ``certificate_arn`` None keep what it has."""
    cloudfront = aws.client("cloudfront")
    found = find_distribution(aws, names.function)
    if found is None:
        config = {
            **distribution_config(names, oac_id, domain, certificate_arn),
            "CallerReference": f"{names.function}-{uuid.uuid4().hex}",
        }
        made = cloudfront.create_distribution_with_tags(
            DistributionConfigWithTags={
                "DistributionConfig": config,
                "Tags": {"Items": [{"Key": k, "Value": v} for k, v in tags.items()]},
            }
        )["Distribution"]
        distribution = Distribution(
            made["Id"], made["ARN"], made["DomainName"], f"https://{domain or made['DomainName']}"
        )
        detail = (
            f"{distribution.url} serves s3://{names.tiles_bucket} (Origin Access Control), {PRICE_CLASS}; "
            "CloudFront deploys it in about 15 minutes"
        )
        return Change("created", "distribution", made["Id"], detail), distribution
    answer = cloudfront.get_distribution_config(Id=found["Id"])
    current = answer["DistributionConfig"]
    domain = domain if domain is not None else next(iter(current["Aliases"].get("Items") or []), None)
    if certificate_arn is None:
        certificate_arn = current["ViewerCertificate"].get("ACMCertificateArn") or None
    wanted = distribution_config(names, oac_id, domain, certificate_arn)
    parts = [
        _LABELS[key] for key, value in wanted.items() if not covers(_canonical(current.get(key)), _canonical(value))
    ]
    if parts:
        cloudfront.update_distribution(Id=found["Id"], IfMatch=answer["ETag"], DistributionConfig={**current, **wanted})
    return updated_or_unchanged("distribution", found["Id"], parts), Distribution(
        found["Id"], found["ARN"], found["DomainName"], f"https://{domain or found['DomainName']}"
    )


ROOT_OBJECT = "index.html"  # no such object: "/" answers 404


def distribution_config(names: Names, oac_id: str, domain: str | None, certificate_arn: str | None) -> dict[str, Any]:
    """HTTPS for viewers, GET/HEAD/OPTIONS, compressed, the managed cache and CORS policies, the bucket's regional
    endpoint as the origin. Preflights (OPTIONS) are not cached: the cache key ignores Access-Control-Request-*,
    and browsers keep a preflight's answer for a day themselves (the bucket's CORS MaxAgeSeconds)."""
    aliases = [domain] if domain else []
    certificate = (
        {"ACMCertificateArn": certificate_arn, "SSLSupportMethod": "sni-only", "MinimumProtocolVersion": "TLSv1.2_2021"}
        if certificate_arn
        else {"CloudFrontDefaultCertificate": True}
    )
    return {
        "Comment": _comment(names.function),
        "Enabled": True,
        "DefaultRootObject": ROOT_OBJECT,  # "/" must never reach S3 as a listing of the bucket
        "Aliases": {"Quantity": len(aliases), **({"Items": aliases} if aliases else {})},
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": ORIGIN_ID,
                    "DomainName": names.tiles_domain,
                    "OriginPath": "",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                    "OriginAccessControlId": oac_id,
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": ORIGIN_ID,
            "ViewerProtocolPolicy": "redirect-to-https",
            "Compress": True,
            "AllowedMethods": {
                "Quantity": 3,
                "Items": ["GET", "HEAD", "OPTIONS"],
                "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]},
            },
            "CachePolicyId": CACHING_OPTIMIZED,
            "OriginRequestPolicyId": CORS_S3_ORIGIN,
            "ResponseHeadersPolicyId": CORS_WITH_PREFLIGHT,
        },
        "PriceClass": PRICE_CLASS,
        "HttpVersion": "http2and3",
        "IsIPV6Enabled": True,
        "ViewerCertificate": certificate,
    }


def find_distribution(aws: Aws, function: str) -> dict[str, Any] | None:
    """The stage's distribution (a ListDistributions summary: Id, ARN, DomainName, Status, ...), or None."""
    pages = aws.client("cloudfront").get_paginator("list_distributions").paginate()
    return next(
        (
            d
            for page in pages
            for d in page["DistributionList"].get("Items") or []
            if d.get("Comment") == _comment(function)
        ),
        None,
    )


def delete_cdn(aws: Aws, function: str, owner: str) -> list[Change]:
    """Disable the distribution, then (once CloudFront has deployed that) delete it and its OAC."""
    cloudfront, oac = aws.client("cloudfront"), oac_name(function)
    found = find_distribution(aws, function)
    if found is None:
        return [Change("absent", "distribution", f"(none for {function})"), _delete_oac(aws, function)]
    tags = cloudfront.list_tags_for_resource(Resource=found["ARN"])["Tags"].get("Items") or []
    if {t["Key"]: t.get("Value") for t in tags}.get(OWNER_TAG) != owner:
        return [
            Change("kept", "distribution", found["Id"], f"not created by provisioning (no {OWNER_TAG}={owner} tag)"),
            Change("kept", "origin access control", oac, f"used by {found['Id']}"),
        ]
    answer = cloudfront.get_distribution_config(Id=found["Id"])
    if answer["DistributionConfig"]["Enabled"]:
        cloudfront.update_distribution(
            Id=found["Id"],
            IfMatch=answer["ETag"],
            DistributionConfig={**answer["DistributionConfig"], "Enabled": False},
        )
    now = cloudfront.get_distribution(Id=found["Id"])
    if now["Distribution"]["Status"] != "Deployed":
        return [
            Change(
                "kept",
                "distribution",
                found["Id"],
                "disabled; run teardown again in about 15 minutes, once CloudFront has deployed that",
            ),
            Change("kept", "origin access control", oac, f"used by {found['Id']}"),
        ]
    cloudfront.delete_distribution(Id=found["Id"], IfMatch=now["ETag"])
    return [Change("deleted", "distribution", found["Id"]), _delete_oac(aws, function)]


def oac_name(function: str) -> str:
    return f"{function[:58]}-tiles"  # OAC names are at most 64 characters


def _delete_oac(aws: Aws, function: str) -> Change:
    found = _origin_access_control(aws, function)
    if found is None:
        return Change("absent", "origin access control", oac_name(function))
    cloudfront = aws.client("cloudfront")
    etag = cloudfront.get_origin_access_control(Id=found["Id"])["ETag"]
    cloudfront.delete_origin_access_control(Id=found["Id"], IfMatch=etag)
    return Change("deleted", "origin access control", oac_name(function))


def _origin_access_control(aws: Aws, function: str) -> dict[str, Any] | None:
    """The stage's OAC (OACs take no tags: its description names the stage, as the owner tag would)."""
    wanted = _oac_config(function)
    pages = aws.client("cloudfront").get_paginator("list_origin_access_controls").paginate()
    return next(
        (
            c
            for page in pages
            for c in page["OriginAccessControlList"].get("Items") or []
            if (c["Name"], c.get("Description")) == (wanted["Name"], wanted["Description"])
        ),
        None,
    )


def _oac_config(function: str) -> dict[str, str]:
    return {
        "Name": oac_name(function),
        "Description": f"{OWNER_TAG}={function}",
        "SigningProtocol": "sigv4",
        "SigningBehavior": "always",
        "OriginAccessControlOriginType": "s3",
    }


def _comment(function: str) -> str:
    return f"tiles of {function} ({OWNER_TAG}={function})"


def _canonical(value: Any) -> Any:
    """Lists of names in a stable order: CloudFront may return allowed methods in another order than sent."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items) if all(isinstance(v, str) for v in items) else items
    return value
