"""The native uploader against the S3 endpoint over HTTP: keys, headers, bytes, errors, cancelling."""

import pytest

from app.errors import SourceGone
from app.storage import s3 as s3_storage


@pytest.fixture
def uploader(cloud):
    return s3_storage.uploader(cloud.settings.upload_workers)


def test_awkward_keys_land_whole_with_their_headers(cloud, uploader, tmp_path):
    source = tmp_path / "tile.jpg"
    source.write_bytes(b"\xff\xd8" + bytes(range(256)) * 300)
    keys = ["a b+c (é)/0/0_0.jpg", "box-3/letter 7/full/512,384/0/default.jpg", "100%/~tilde.jpg"]
    uploads = [
        uploader.put_file(
            source, "tiler-tiles", key, {"Content-Type": "image/jpeg", "Cache-Control": s3_storage.TILE_CACHE}
        )
        for key in keys
    ]
    assert [upload.result(timeout=30) for upload in uploads] == [source.stat().st_size] * len(keys)
    assert cloud.tiles() == set(keys)
    for key in keys:
        head = cloud.s3.head_object(Bucket="tiler-tiles", Key=key)
        assert head["ContentType"] == "image/jpeg" and head["CacheControl"] == s3_storage.TILE_CACHE
        assert cloud.read("tiler-tiles", key) == source.read_bytes()


def test_an_error_answer_is_classified_like_botocores(cloud, uploader, tmp_path):
    source = tmp_path / "tile.jpg"
    source.write_bytes(b"tile")
    upload = uploader.put_file(source, "no-such-bucket", "x.jpg", {})
    with pytest.raises(SourceGone), s3_storage.classified():
        upload.result(timeout=30)


def test_cancel_stops_an_upload_and_it_fails_instead_of_counting_as_cancelled(cloud, uploader, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(64 << 20))  # large enough to be still in flight when cancelled
    upload = uploader.put_file(source, "tiler-tiles", "big.bin", {})
    assert upload.cancel() is False
    with pytest.raises(Exception, match="(?i)cancel"):
        upload.result(timeout=60)
    assert not upload.cancelled()


def test_objects_go_where_botocore_would_send_them(monkeypatch):
    """The regional virtual-hosted endpoint (a presigned URL would name the global one), path style where the
    bucket name cannot be a TLS host name; nothing is sent to find out."""
    import boto3
    from botocore.config import Config

    from app.storage.native_uploads import NativeUploader

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    uploader = NativeUploader(
        boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="eu-west-1"), Config(), 4
    )
    assert uploader._where("tiler-tiles") == ("tiler-tiles.s3.eu-west-1.amazonaws.com", "/")
    assert uploader._where("my.tiles") == ("s3.eu-west-1.amazonaws.com", "/my.tiles/")
