"""A page token the listing never gave is the client's mistake: 400, never 500."""

import pytest
from botocore.exceptions import ClientError

from app.web import create_app
from config import Settings

PAGES = ("/api/images", "/api/images?status=failed", "/collections", "/", "/?status=done")


@pytest.mark.parametrize("token", ["%%%", "x" * 5000, "é", "a b", "<script>", "../jobs"])
def test_a_token_s3_could_never_have_given_answers_400(cloud, token):
    client = create_app(Settings.from_env()).test_client()
    for page in PAGES:
        answer = client.get(f"{page}{'&' if '?' in page else '?'}token={token}")
        assert answer.status_code == 400, (page, answer.status_code)
        assert "page token" in answer.get_data(as_text=True)


def test_a_token_s3_refuses_answers_400(cloud, monkeypatch):
    """S3 answers InvalidArgument for a well-formed token it did not issue (the embedded endpoint ignores it)."""
    app = create_app(Settings.from_env())
    store = app.extensions["catalog"].store

    def refuse(**kwargs):
        raise ClientError(
            {"Error": {"Code": "InvalidArgument", "Message": "The continuation token provided is incorrect"}},
            "ListObjectsV2",
        )

    monkeypatch.setattr(store.s3, "list_objects_v2", refuse)
    client = app.test_client()
    assert client.get("/api/images?token=QmFzZTY0VG9rZW4=").status_code == 400
    assert client.get("/collections?token=QmFzZTY0VG9rZW4=").status_code == 400
    assert client.get("/api/images").status_code == 500  # without a token S3's refusal is not the client's doing
