"""The dashboard's presigned upload POST: SigV4 on the bucket's own endpoint, a policy for one key, size and type."""

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests

from app.errors import SourceGone
from app.ids import image_id_for
from app.storage import s3 as s3_storage
from app.web.catalog import Catalog
from config import Settings
from tests.helpers import photo


@pytest.fixture
def fresh_clients():
    """boto3 clients built from this test's environment, and from the next test's again afterwards."""
    caches = (s3_storage._session, s3_storage.client, s3_storage.form_signer)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


def _policy(form):
    return json.loads(base64.b64decode(form["fields"]["policy"]))


def _s3_allows(form, fields, size, at=None):
    """S3's check of a POST policy as AWS documents it: not expired, every condition met, and every form field
    (but policy, x-amz-signature and file) named by a condition."""
    policy = _policy(form)
    if (at or datetime.now(UTC)) >= datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00")):
        return False
    values = {name.lower(): value for name, value in fields.items()} | {"bucket": "tiler-source"}
    named = set()
    for condition in policy["conditions"]:
        if isinstance(condition, dict):
            ((name, expected),) = condition.items()
            condition = ["eq", f"${name}", expected]
        operator, *arguments = condition
        if operator == "content-length-range":
            if not arguments[0] <= size <= arguments[1]:
                return False
            continue
        name, expected = arguments[0].lstrip("$").lower(), arguments[1]
        named.add(name)
        value = values.get(name)
        if value is None or not (value == expected if operator == "eq" else value.startswith(expected)):
            return False
    return set(values) - {"policy", "x-amz-signature"} <= named


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1"])
def test_on_aws_the_form_is_sigv4_on_the_regional_endpoint_for_one_key_size_and_type(
    region, tmp_path, monkeypatch, fresh_clients
):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }.items():
        monkeypatch.setenv(name, value)
    catalog = Catalog(Settings.from_env({"UPLOAD_MAX_BYTES": "1000000", "UPLOAD_FORM_MINUTES": "7"}))
    monkeypatch.setattr(catalog.store, "head", lambda ref: (_ for _ in ()).throw(SourceGone("free")))  # no network

    before = datetime.now(UTC)
    form = catalog.upload_form("Scan 1.tif", "image/tiff")
    after = datetime.now(UTC)
    assert form["url"] == f"https://tiler-source.s3.{region}.amazonaws.com/"
    assert re.fullmatch(r"uploads/Scan 1-[0-9a-f]{8}\.tif", form["key"]) and form["id"] == image_id_for(form["key"])
    fields = form["fields"]
    day = fields["x-amz-date"][:8]
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert fields["x-amz-credential"] == f"AKIDEXAMPLE/{day}/{region}/s3/aws4_request"
    assert fields["key"] == form["key"] and fields["Content-Type"] == "image/tiff"
    assert "AWSAccessKeyId" not in fields and "signature" not in fields  # nothing of SigV2

    policy = _policy(form)
    expected = [
        {"bucket": "tiler-source"},
        {"key": form["key"]},
        ["content-length-range", 1, 1_000_000],
        {"Content-Type": "image/tiff"},
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": fields["x-amz-credential"]},
        {"x-amz-date": fields["x-amz-date"]},
    ]
    assert sorted(map(json.dumps, policy["conditions"])) == sorted(map(json.dumps, expected))  # and nothing else
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert before + timedelta(minutes=7, seconds=-1) <= expires <= after + timedelta(minutes=7)
    signing_key = b"AWS4secret"  # SigV4: the policy signed with the key of this day, region and service
    for part in (day, region, "s3", "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    assert fields["x-amz-signature"] == hmac.new(signing_key, fields["policy"].encode(), hashlib.sha256).hexdigest()


def test_on_the_local_endpoint_an_upload_through_the_form_lands_and_nothing_else_is_allowed(cloud, monkeypatch):
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "100000")
    catalog = Catalog(Settings.from_env())
    body = photo(200, 150).write_to_buffer(".jpg")
    form = catalog.upload_form("scan.jpg", "image/jpeg", len(body))
    assert form["url"] == f"{cloud.url}/tiler-source"  # the configured endpoint, path-style
    assert form["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"

    answer = requests.post(
        form["url"], data=form["fields"], files={"file": ("scan.jpg", body, "image/jpeg")}, timeout=30
    )
    assert answer.status_code == 204, answer.text
    stored = cloud.s3.head_object(Bucket="tiler-source", Key=form["key"])
    assert stored["ContentLength"] == len(body) and stored["ContentType"] == "image/jpeg"
    assert cloud.keys("tiler-source") == {form["key"]}

    # moto (5.2) checks neither the signature nor any condition of a POST policy: it stores whatever is posted.
    # So S3's refusals are asserted on the signed policy, by the rules AWS documents (_s3_allows).
    fields = form["fields"]
    assert _s3_allows(form, fields, len(body))
    assert not _s3_allows(form, {**fields, "key": "tasks/evil.json"}, len(body))
    assert not _s3_allows(form, {**fields, "key": "uploads/other.jpg"}, len(body))
    assert not _s3_allows(form, fields, 100_001) and not _s3_allows(form, fields, 0)
    assert not _s3_allows(form, {**fields, "Content-Type": "text/html"}, len(body))
    assert not _s3_allows(form, {k: v for k, v in fields.items() if k != "Content-Type"}, len(body))
    assert not _s3_allows(form, {**fields, "x-amz-meta-note": "anything"}, len(body))
    assert not _s3_allows(form, fields, len(body), at=datetime.now(UTC) + timedelta(minutes=10, seconds=1))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("UPLOAD_PREFIX", "tasks/"),
        ("UPLOAD_PREFIX", "uploads"),
        ("UPLOAD_MAX_BYTES", str(5 * 1024**3 + 1)),
        ("UPLOAD_FORM_MINUTES", "0"),
    ],
)
def test_upload_settings_that_would_sign_too_much_are_refused(variable, value):
    with pytest.raises(ValueError, match=variable):
        Settings.from_env({variable: value})
