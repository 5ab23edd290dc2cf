"""Named derivatives rendered from the conversion's own tiles, end to end through S3 and the dynamic endpoint."""

import json
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
    assert record["derivatives"] == []  # no serving TIFF: SERVING_TIFF is off by default
    assert not cloud.tiles("derivatives/")
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
    crop = client.get("/iiif/3/plate/0,0,1024,1024/500,500/0/default.jpg")  # rendered from the published tiles
    assert crop.status_code == 200 and crop.headers["Content-Type"] == "image/jpeg"
    assert pyvips.Image.new_from_buffer(crop.data, "").width == 500
    tile = client.get("/iiif/3/plate/0,0,1024,1024/512,512/0/default.jpg")  # a published level-0 tile, as is
    assert tile.data == cloud.read("tiler-tiles", "plate/0,0,1024,1024/512,512/0/default.jpg")
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


def test_derivatives_are_the_endpoints_pixels_of_the_same_request(cloud, monkeypatch):
    """Made at conversion from the staged tiles, they are what the endpoint renders from the published ones."""
    monkeypatch.setenv("DERIVATIVES_FILE", str(EXAMPLE))
    cloud.upload("plate.jpg", photo(1500, 1000))
    handle_s3_event(cloud.events()[0])
    made = {d["name"]: d for d in cloud.record("plate")["named_derivatives"]}
    assert made["s"]["path"] == "plate/250,0,1000,1000/320,320/0/default.jpg"
    client = create_app(Settings.from_env()).test_client()
    assert client.get("/iiif/3/plate/square/320,320/0/default.jpg").status_code == 302  # the published file
    fresh = client.get("/iiif/3/plate/square/320,320/0/color.jpg")  # the same answer under another name: rendered
    assert fresh.status_code == 200
    assert fresh.data == cloud.read("tiler-tiles", made["s"]["path"])  # byte for byte


def test_iiif_versions_2_3_publishes_the_2_1_names_and_the_dynamic_2_1_endpoint_answers_with_them(cloud, monkeypatch):
    """Through S3: the 2.1 keys are the same bytes under more names, counted in the record's objects and cost;
    /iiif/2 answers a published tile with its bytes, a named derivative with a redirect to it."""
    cloud.upload("plate.jpg", photo(1500, 1000))
    handle_s3_event(cloud.events()[0])
    only3 = cloud.record("plate")
    keys3 = cloud.tiles()
    monkeypatch.setenv("IIIF_VERSIONS", "2,3")
    monkeypatch.setenv("DERIVATIVES_FILE", str(EXAMPLE))
    cloud.upload("plate2.jpg", photo(1500, 1000))
    handle_s3_event(cloud.events()[-1])
    record = cloud.record("plate2")
    v2 = cloud.tiles("iiif/2/plate2/")
    assert "iiif/2/plate2/info.json" in v2 and "iiif/2/plate2/0,0,512,512/512,/0/default.jpg" in v2
    assert "iiif/2/plate2/full/full/0/default.jpg" in v2  # within IIIF_MAX_SIZE: 2.1's full size
    named = [d for d in record["named_derivatives"] if "path" in d]
    same_as_3 = {key.replace("plate", "plate2", 1) for key in keys3 if key.startswith(("plate/", "plate_files/"))}
    assert same_as_3 <= cloud.tiles()
    assert record["objects"] == only3["objects"] + len(v2) + len(named)
    assert record["cost"]["s3"]["write_requests"] > only3["cost"]["s3"]["write_requests"] + len(v2) - 1
    for key in ("0,0,512,512/512,/0/default.jpg", "full/375,/0/default.jpg"):
        twin = {"0,0,512,512/512,/0/default.jpg": "0,0,512,512/512,512/0/default.jpg"}.get(
            key, "full/375,250/0/default.jpg"
        )
        assert cloud.read("tiler-tiles", f"iiif/2/plate2/{key}") == cloud.read("tiler-tiles", f"plate2/{twin}")
    info3 = json.loads(cloud.read("tiler-tiles", "plate2/info.json"))
    assert info3["service"][0]["@id"] == f"{cloud.url}/tiler-tiles/iiif/2/plate2"

    client = create_app(Settings.from_env()).test_client()
    tile = client.get("/iiif/2/plate2/0,0,512,512/512,/0/default.jpg")  # the published file (either name)
    assert tile.data == cloud.read("tiler-tiles", "iiif/2/plate2/0,0,512,512/512,/0/default.jpg")
    small = {d["name"]: d for d in named}["s"]  # square/320,320: the same pixels asked the 2.1 way
    hit = client.get("/iiif/2/plate2/square/320,/0/default.jpg")
    assert hit.status_code == 302 and hit.headers["Location"] == small["uri"]
    rendered = client.get("/iiif/2/plate2/0,0,512,512/256,/0/default.jpg")
    assert rendered.status_code == 200 and pyvips.Image.new_from_buffer(rendered.data, "").width == 256

    monkeypatch.setenv("IIIF_VERSIONS", "3")  # a new version published without 2.1: its 2.1 keys are pruned
    cloud.upload("plate2.jpg", photo(1400, 1000))
    handle_s3_event(cloud.events()[-1])
    assert cloud.record("plate2")["status"] == "done" and not cloud.tiles("iiif/2/plate2/")
