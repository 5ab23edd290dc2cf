"""Deleting many objects: S3's DeleteObjects answers 200 and lists each key it refused, which must not pass."""

import pytest
from botocore.stub import Stubber

from app.errors import TransientError
from app.storage.s3 import S3Storage


def test_keys_s3_refuses_to_delete_are_an_error_not_a_silent_success(local_s3):
    store = S3Storage(2)
    with Stubber(store.s3) as stub:
        stub.add_response(
            "delete_objects",
            {"Errors": [{"Key": "pages/a/p0001@v.pdf", "Code": "AccessDenied", "Message": "Access Denied"}]},
        )
        with pytest.raises(TransientError, match=r"did not delete 1 of 2 .*pages/a/p0001@v.pdf: AccessDenied"):
            store.delete_keys("tiler-source", ["pages/a/p0001@v.pdf", "pages/a/p0002@v.pdf"])
        stub.add_response("delete_objects", {})
        store.delete_keys("tiler-source", ["x"])  # nothing refused: quiet
