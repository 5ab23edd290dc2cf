"""The dynamic IIIF endpoint against the embedded S3 endpoint: Deep Zoom tiles made exactly as the pipeline makes
them, and the job record that says they are published."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator

import pytest
import pyvips
from werkzeug.serving import make_server

from app import records
from app.pipeline.tiles import iiif_names, link_iiif_tiles, make_iiif_folders, write_deep_zoom, write_sizes
from app.web import create_app
from config import Settings
from tests.helpers import in_background

TILE_SIZE = 512


def app_for(settings: Settings):
    return create_app(settings)


class Served:
    """Publish images' Deep Zoom tiles to the tiles bucket with a job record; build the app that serves them."""

    def __init__(self, cloud, tmp_path, monkeypatch) -> None:
        self.cloud, self.tmp_path, self.monkeypatch = cloud, tmp_path, monkeypatch
        self.settings = cloud.settings

    def put(
        self,
        image_id: str,
        image: pyvips.Image,
        version: str | None = None,
        record: bool = True,
        static: tuple[int, ...] = (),
    ) -> str:
        """Tile ``image`` as the pipeline does and publish the tiles and a final record naming ``version`` (the
        source's ETag; a fresh one by default, as a new upload has). ``static`` are the Image API versions whose
        level-0 tiles and sizes are published too, and which the record names (by default none). Returns the
        version. ``record=False`` uploads the tiles alone, as a re-publication does before its record."""
        version = version or uuid.uuid4().hex
        root = self.tmp_path / "published" / version
        keys = write_deep_zoom(image, root, image_id, TILE_SIZE, 85)
        if static:
            names = iiif_names(image_id, image.width, image.height, TILE_SIZE, static)
            make_iiif_folders(root, names)
            link_iiif_tiles(root, names)
            sizes = (image.width, image.height, TILE_SIZE, self.settings.iiif_max_size, 85, names, static)
            keys += write_sizes(root, image_id, *sizes) + [path for paths in names.values() for path in paths]
        for key in keys:
            self.cloud.s3.put_object(Bucket=self.settings.tiles_bucket, Key=key, Body=(root / key).read_bytes())
        if not record:
            return version
        published = {"etag": version, "key": f"{image_id}.tif", "width": image.width, "height": image.height}
        self.record(
            image_id, status="done", published=published, tile_size=TILE_SIZE, iiif_versions=list(static), replace=True
        )
        return version

    def record(self, image_id: str, replace: bool = False, **fields) -> dict:
        """Write the image's job record: ``fields`` over what it holds now (``replace``: over nothing)."""
        key = records.record_key(image_id)
        now = (
            {}
            if replace
            else json.loads(self.cloud.s3.get_object(Bucket=self.settings.metadata_bucket, Key=key)["Body"].read())
        )
        document = {"id": image_id, **now, **fields}
        self.cloud.s3.put_object(Bucket=self.settings.metadata_bucket, Key=key, Body=json.dumps(document))
        return document

    def limit(self, **limits: int) -> None:
        """Lower the advertised limits (iiif_max_width, iiif_max_height, iiif_max_area)."""
        self.settings = self.settings.with_overrides(**limits)

    def app(self):
        return app_for(self.settings)

    def client(self):
        return self.app().test_client()


@pytest.fixture
def served(cloud, tmp_path, monkeypatch) -> Served:
    return Served(cloud, tmp_path, monkeypatch)


@contextlib.contextmanager
def http_server(app) -> Iterator[str]:
    """``app`` on 127.0.0.1 (a free port), threaded, for clients that need real HTTP; yields host:port."""
    with in_background(make_server("127.0.0.1", 0, app, threaded=True)) as port:
        yield f"127.0.0.1:{port}"
