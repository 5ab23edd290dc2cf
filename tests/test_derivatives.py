"""The pipeline's serving TIFF and named derivatives, end to end through S3 and the dynamic endpoint."""

from pathlib import Path

import pytest
import pyvips

from app.events import handle_s3_event
from app.pipeline.derivatives import load
from app.web import create_app
from config import Settings
from tests.helpers import photo

EXAMPLE = Path(__file__).resolve().parents[1] / "derivatives.example.json"


def test_a_converted_image_is_served_dynamically_and_its_derivatives_are_cache_hits(cloud, monkeypatch):
    monkeypatch.setenv("DERIVATIVES_FILE", str(EXAMPLE))
    cloud.upload("plate.jpg", photo(3000, 2000))
    (event,) = cloud.events()
    handle_s3_event(event)
    record = cloud.record("plate")
    assert record["derivatives"] == ["derivatives/plate.tif"]
    made = {d["name"]: d for d in record["named_derivatives"]}
    assert (made["b"]["width"], made["b"]["height"]) == (2048, 1365)
    assert (made["s"]["path"], made["s"]["width"]) == ("plate/500,0,2000,2000/320,320/0/default.jpg", 320)
    assert made["m"]["path"].endswith("/0/default.webp")
    for derivative in made.values():
        body = cloud.read("tiler-tiles", derivative["path"])
        image = pyvips.Image.new_from_buffer(body, "")
        assert (image.width, image.height) == (derivative["width"], derivative["height"])
        assert derivative["uri"] == f"{cloud.url}/tiler-tiles/{derivative['path']}"

    client = create_app(Settings.from_env()).test_client()
    tile = client.get("/iiif/3/plate/0,0,1024,1024/512,512/0/default.jpg")  # rendered from the pipeline's TIFF
    assert tile.status_code == 200 and tile.headers["Content-Type"] == "image/jpeg"
    assert pyvips.Image.new_from_buffer(tile.data, "").width == 512
    hit = client.get("/iiif/3/plate/square/320,320/0/default.jpg")
    assert hit.status_code == 302 and hit.headers["Location"] == made["s"]["uri"]


def test_a_derivative_that_does_not_apply_is_skipped_with_the_reason(cloud, monkeypatch):
    monkeypatch.setenv("DERIVATIVES_FILE", str(EXAMPLE))
    cloud.upload("small.jpg", photo(600, 400))
    handle_s3_event(cloud.events()[0])
    made = {d["name"]: d for d in cloud.record("small")["named_derivatives"]}
    assert cloud.record("small")["status"] == "done"
    assert "skipped" in made["b"]  # !2048,1536 would upscale a 600 px image: nothing to make
    assert made["s"]["width"] == 320


@pytest.mark.parametrize(
    "content,reason",
    [
        ('{"x": {"size": "huge"}}', "'x'"),
        ('{"x": {"colour": "red"}}', "unknown fields"),
        ("[1]", "expected an object"),
        ("not json", "DERIVATIVES_FILE"),
    ],
)
def test_bad_instruction_files_are_refused_clearly(tmp_path, content, reason):
    path = tmp_path / "derivatives.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=reason):
        load(str(path))


def test_derivatives_need_the_serving_tiff():
    with pytest.raises(ValueError, match="needs SERVING_TIFF"):
        Settings.from_env({"DERIVATIVES_FILE": str(EXAMPLE), "SERVING_TIFF": "false"})
