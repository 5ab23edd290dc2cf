"""A tile of a large serving TIFF costs a few ranged GETs, never a download of the file."""

import pytest

from app.iiif.request import Limits, parse, plan
from app.pipeline.render import read_pyramid, render
from app.storage import ranged as s3source
from app.storage.ranged import BLOCK_SIZE, MAX_SPAN_BLOCKS, RemoteTiff
from app.storage.s3 import S3Storage
from tests.helpers import photo

LIMITS = Limits(4096, 4096, 4096 * 4096)


@pytest.fixture
def large(served):
    """A 6000x4000 photo-like serving TIFF (about 11 MB, five pages) on the S3 endpoint, and an empty block cache."""
    body = served.put("large", photo(6000, 4000))
    s3source.BLOCKS.clear()
    return served, len(body)


def _tile(tiff: RemoteTiff, region: str, size: str = "512,512") -> bytes:
    pyramid = read_pyramid(tiff.open)
    wanted = plan(parse(region, size, "0", "default", "jpg"), pyramid.width, pyramid.height, LIMITS)
    return render(wanted, pyramid, tiff.open)


def test_a_cold_tile_reads_a_small_fraction_of_the_file(large):
    served, file_bytes = large
    storage = S3Storage(4)
    tiff = RemoteTiff.locate(storage, served.settings.tiles_bucket, "derivatives/large.tif")
    assert tiff.ref.size == file_bytes
    assert _tile(tiff, "2048,1024,512,512").startswith(b"\xff\xd8")
    assert tiff.stats.bytes_fetched < file_bytes / 10  # the page directories and the tile: ~0.5 MB of ~7 MB
    assert tiff.stats.gets <= 10
    assert storage.requests["read"] == 1 + tiff.stats.gets  # one HEAD, one GET per block: no other reads


def test_a_warm_process_reads_only_the_new_tiles_blocks(large):
    served, file_bytes = large
    storage = S3Storage(4)
    _tile(RemoteTiff.locate(storage, served.settings.tiles_bucket, "derivatives/large.tif"), "0,0,512,512")
    warm = RemoteTiff.locate(storage, served.settings.tiles_bucket, "derivatives/large.tif")
    _tile(warm, "4096,2048,512,512")
    assert warm.stats.gets <= 3 and warm.stats.bytes_fetched <= 3 * BLOCK_SIZE  # one ~150 KB tile: 3 blocks
    again = RemoteTiff.locate(storage, served.settings.tiles_bucket, "derivatives/large.tif")
    _tile(again, "4096,2048,512,512")
    assert again.stats.gets == 0  # everything from the process's block cache


def test_a_thumbnail_of_the_whole_image_reads_the_small_pages_only(large):
    served, file_bytes = large
    tiff = RemoteTiff.locate(S3Storage(4), served.settings.tiles_bucket, "derivatives/large.tif")
    _tile(tiff, "full", "!300,300")
    assert tiff.stats.bytes_fetched < file_bytes / 10


def test_the_endpoint_reads_through_ranges_only(large, monkeypatch):
    served, file_bytes = large
    ranges = []
    read_range = S3Storage.read_range

    def recorded(self, bucket, key, start, end, etag=None):
        ranges.append(end - start)
        return read_range(self, bucket, key, start, end, etag)

    monkeypatch.setattr(S3Storage, "read_range", recorded)
    monkeypatch.setattr(S3Storage, "fetch", lambda *args, **kwargs: pytest.fail("downloaded the whole file"))
    client = served.client()
    assert client.get("/iiif/3/large/info.json").get_json()["width"] == 6000
    assert client.get("/iiif/3/large/1024,1024,512,512/max/0/default.jpg").status_code == 200
    assert ranges and max(ranges) <= MAX_SPAN_BLOCKS * BLOCK_SIZE and sum(ranges) < file_bytes / 10
