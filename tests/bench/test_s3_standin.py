"""The benchmark's S3 stand-in answers as S3 does where the benchmark relies on it: ranges and multipart uploads."""

from __future__ import annotations

import sys
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from s3_standin import StandInS3, byte_range  # noqa: E402

from tooling.local_s3 import FAKE_CREDENTIALS  # noqa: E402

MIB = 2**20


@pytest.fixture(scope="module")
def standin():
    with StandInS3(0.0) as server:
        yield server


@pytest.fixture
def s3(standin):
    client = boto3.client(
        "s3",
        endpoint_url=standin.url,
        region_name=FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}),
    )
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(standin.url + "/__reset", method="POST")).close()
    client.create_bucket(Bucket="b")
    return client


def test_ranged_gets_answer_206_with_the_part_and_its_content_range(s3):
    body = bytes(range(256)) * 40  # 10,240 bytes
    s3.put_object(Bucket="b", Key="k", Body=body)
    for header, first, last in (
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-40", 10200, 10239),
    ):
        answer = s3.get_object(Bucket="b", Key="k", Range=header)
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert answer["ContentRange"] == f"bytes {first}-{last}/10240"
        assert answer["Body"].read() == body[first : last + 1]
    clipped = s3.get_object(Bucket="b", Key="k", Range="bytes=10000-99999")
    assert clipped["ContentRange"] == "bytes 10000-10239/10240"
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="b", Key="k", Range="bytes=10240-")
    assert refused.value.response["Error"]["Code"] == "InvalidRange"
    assert s3.get_object(Bucket="b", Key="k")["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_byte_range_follows_http_rules():
    assert byte_range("bytes=0-0", 5) == (0, 0)
    assert byte_range("bytes=-10", 5) == (0, 4)
    assert byte_range("bytes=5-", 5) == ()
    assert byte_range("bytes=3-1", 5) is None  # invalid: ignored, the whole object
    assert byte_range("items=0-1", 5) is None
    assert byte_range("bytes=0-1,3-4", 5) is None


def test_multipart_uploads_assemble_the_parts_with_s3s_etag(s3):
    import hashlib

    parts = [b"a" * (5 * MIB), b"b" * (5 * MIB), b"c" * 100]
    upload = s3.create_multipart_upload(Bucket="b", Key="big", ContentType="image/tiff")["UploadId"]
    etags = [
        s3.upload_part(Bucket="b", Key="big", UploadId=upload, PartNumber=n, Body=part)["ETag"]
        for n, part in enumerate(parts, 1)
    ]
    done = s3.complete_multipart_upload(
        Bucket="b",
        Key="big",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, 1)]},
    )
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
    assert done["ETag"] == f'"{expected}"'
    stored = s3.get_object(Bucket="b", Key="big")
    assert stored["ContentType"] == "image/tiff"
    assert stored["Body"].read() == b"".join(parts)


def test_multipart_uploads_refuse_what_s3_refuses_and_can_be_aborted(s3):
    upload = s3.create_multipart_upload(Bucket="b", Key="small")["UploadId"]
    etags = [s3.upload_part(Bucket="b", Key="small", UploadId=upload, PartNumber=n, Body=b"x")["ETag"] for n in (1, 2)]
    listed = [{"PartNumber": n, "ETag": etag} for n, etag in zip((1, 2), etags)]
    for parts, code in ((listed, "EntityTooSmall"), (listed[::-1], "InvalidPartOrder")):
        with pytest.raises(ClientError) as refused:
            s3.complete_multipart_upload(Bucket="b", Key="small", UploadId=upload, MultipartUpload={"Parts": parts})
        assert refused.value.response["Error"]["Code"] == code
    s3.abort_multipart_upload(Bucket="b", Key="small", UploadId=upload)
    with pytest.raises(ClientError) as gone:
        s3.upload_part(Bucket="b", Key="small", UploadId=upload, PartNumber=3, Body=b"x")
    assert gone.value.response["Error"]["Code"] == "NoSuchUpload"
    assert s3.list_objects_v2(Bucket="b")["KeyCount"] == 0


def test_a_large_file_goes_up_in_parts_through_boto3s_transfer(s3, tmp_path):
    path = tmp_path / "large.bin"
    path.write_bytes(bytes(range(256)) * (12 * MIB // 256))
    s3.upload_file(
        str(path), "b", "large.bin", Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    )
    stored = s3.head_object(Bucket="b", Key="large.bin")
    assert stored["ETag"].endswith('-3"')
    assert s3.get_object(Bucket="b", Key="large.bin")["Body"].read() == path.read_bytes()
