"""A cold open fetches the serving TIFF's scattered directories in one parallel round, named by the publisher."""

import threading

import pytest

from app.iiif import serving
from app.iiif.request import Limits, parse, plan
from app.pipeline.render import read_pyramid, render
from app.storage import ranged
from app.storage.publishing import Publisher
from app.storage.ranged import BLOCK_SIZE, DIRECTORY_METADATA, RemoteTiff, directory_metadata, parse_ranges
from app.storage.s3 import S3Storage
from tests.helpers import photo
from tests.image_service.conftest import serving_tiff

LIMITS = Limits(4096, 4096, 4096 * 4096)


@pytest.fixture
def published(cloud, tmp_path):
    """A 6000x4000 serving TIFF published as the job publishes it (its metadata included); an empty block cache."""
    path = tmp_path / "serving.tif"
    serving_tiff(photo(6000, 4000), path)
    storage = S3Storage(4)
    upload = Publisher(storage, cloud.settings.tiles_bucket, cloud.settings.metadata_bucket).upload(
        path, "tiles", serving.key("big"), "no-cache"
    )
    upload.result(timeout=60)
    ranged.BLOCKS.clear()
    return path


def test_the_publisher_names_every_directory_and_a_cold_open_reads_nothing_else_before_the_pixels(cloud, published):
    head = cloud.s3.head_object(Bucket=cloud.settings.tiles_bucket, Key=serving.key("big"))
    assert head["Metadata"][DIRECTORY_METADATA] == directory_metadata(published, serving.key("big"))[DIRECTORY_METADATA]
    tiff = RemoteTiff.locate(S3Storage(4), cloud.settings.tiles_bucket, serving.key("big"))
    prefetched = tiff.stats.gets
    size = published.stat().st_size
    assert 2 <= prefetched <= 12 and tiff.stats.bytes_fetched < size / 10  # five pages' directories, not the file
    pyramid = read_pyramid(tiff.open)  # libtiff walks every page's directory
    assert len(pyramid.pages) >= 5
    assert tiff.stats.gets == prefetched  # all of it was in the blocks fetched at once


def test_the_prefetch_is_one_round_of_parallel_gets(cloud, published, monkeypatch):
    """Every block's GET is in flight before any answers: a barrier all of them must reach."""
    ref, metadata = S3Storage(4).head_with_metadata(ranged.SourceRef(cloud.settings.tiles_bucket, serving.key("big")))
    ranges = parse_ranges(metadata[DIRECTORY_METADATA], ref.size)
    blocks = sorted({0} | {i for start, end in ranges for i in range(start // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1)})
    runs = 1 + sum(1 for a, b in zip(blocks, blocks[1:]) if b != a + 1)  # consecutive blocks share a GET
    assert runs > 2
    barrier = threading.Barrier(runs, timeout=30)
    read_range = S3Storage.read_range

    def together(self, *args, **kwargs):
        barrier.wait()  # breaks (and fails the test) if the GETs were made one after another
        return read_range(self, *args, **kwargs)

    monkeypatch.setattr(S3Storage, "read_range", together)
    tiff = RemoteTiff.locate(S3Storage(4), cloud.settings.tiles_bucket, serving.key("big"))
    assert tiff.stats.gets == runs and tiff.stats.bytes_fetched >= (len(blocks) - 1) * BLOCK_SIZE


def test_a_tile_across_blocks_is_one_get(cloud, published):
    tiff = RemoteTiff.locate(S3Storage(4), cloud.settings.tiles_bucket, serving.key("big"))
    pyramid = read_pyramid(tiff.open)
    before = (tiff.stats.gets, tiff.stats.bytes_fetched)
    wanted = plan(parse("2048,1024,512,512", "512,512", "0", "default", "jpg"), 6000, 4000, LIMITS)
    assert render(wanted, pyramid, tiff.open).startswith(b"\xff\xd8")
    assert tiff.stats.bytes_fetched - before[1] > BLOCK_SIZE  # the tile's bytes span blocks ...
    assert tiff.stats.gets - before[0] == 1  # ... and came in one GET


def test_a_warm_open_fetches_nothing_again(cloud, published):
    storage = S3Storage(4)
    read_pyramid(RemoteTiff.locate(storage, cloud.settings.tiles_bucket, serving.key("big")).open)
    again = RemoteTiff.locate(storage, cloud.settings.tiles_bucket, serving.key("big"))
    read_pyramid(again.open)
    assert again.stats.gets == 0


def test_only_the_serving_tiff_gets_the_metadata(tmp_path):
    path = tmp_path / "serving.tif"
    serving_tiff(photo(600, 400), path)
    assert directory_metadata(path, serving.key("x"))[DIRECTORY_METADATA].startswith("0-16,")
    assert directory_metadata(path, "x/full/max/0/default.jpg") == {}


@pytest.mark.parametrize(
    "text",
    ["", "1-2,x", "5-3", "0-99999999", "-1-5", "1-2;3-4", ",".join(["1-2"] * 300), "1_0-20"],
)
def test_metadata_that_is_not_ranges_inside_the_object_is_ignored(text):
    assert parse_ranges(text, 1000) == []


def test_the_metadata_stays_within_s3s_2_kb_of_user_metadata_however_many_directories(tmp_path, monkeypatch):
    path = tmp_path / "serving.tif"
    serving_tiff(photo(600, 400), path)
    many = [(i * 100_000, i * 100_000 + 900) for i in range(1000)]
    monkeypatch.setattr(ranged, "directory_ranges", lambda read: many)
    metadata = directory_metadata(path, serving.key("x"))
    assert sum(len(name) + len(value) for name, value in metadata.items()) <= 2048  # S3's limit on user metadata
    assert (
        parse_ranges(metadata[DIRECTORY_METADATA], 10**9)
        == many[: len(parse_ranges(metadata[DIRECTORY_METADATA], 10**9))]
    )
