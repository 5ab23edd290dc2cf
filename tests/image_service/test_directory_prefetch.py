"""A cold open fetches the serving TIFF's scattered directories in one parallel round, named by the publisher."""

import threading

import pytest

from app.iiif import serving
from app.pipeline.render import read_pyramid
from app.storage import ranged
from app.storage.publishing import Publisher
from app.storage.ranged import BLOCK_SIZE, DIRECTORY_METADATA, RemoteTiff, directory_metadata, parse_ranges
from app.storage.s3 import S3Storage
from tests.helpers import photo
from tests.image_service.conftest import serving_tiff


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
    blocks = {0} | {i for start, end in ranges for i in range(start // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1)}
    barrier = threading.Barrier(len(blocks), timeout=30)
    read_range = S3Storage.read_range

    def together(self, *args, **kwargs):
        barrier.wait()  # breaks (and fails the test) if the GETs were made one after another
        return read_range(self, *args, **kwargs)

    monkeypatch.setattr(S3Storage, "read_range", together)
    tiff = RemoteTiff.locate(S3Storage(4), cloud.settings.tiles_bucket, serving.key("big"))
    assert tiff.stats.gets == len(blocks)


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
