"""The endpoint's HTTP contract (headers, media types, info.json) and its pixels, against TIFFs on the S3 endpoint."""

import json

import pytest
import pyvips

from app.errors import TransientError
from app.storage.s3 import S3Storage
from config import Settings
from tests.helpers import photo, solid

QUADRANTS = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]]  # top-left, top-right, bottom-left, bottom-right


def _quadrants(width=800, height=600) -> pyvips.Image:
    top = solid(width // 2, height // 2, QUADRANTS[0]).join(solid(width // 2, height // 2, QUADRANTS[1]), "horizontal")
    bottom = solid(width // 2, height // 2, QUADRANTS[2]).join(
        solid(width // 2, height // 2, QUADRANTS[3]), "horizontal"
    )
    return top.join(bottom, "vertical")


def _image(response) -> pyvips.Image:
    assert response.status_code == 200, response.get_data(as_text=True)
    return pyvips.Image.new_from_buffer(response.data, "")


def _near(pixel, colour, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


@pytest.fixture
def client(served):
    served.put("maps/quadrants", _quadrants())
    return served.client()


def test_info_json_describes_a_level2_service_at_the_requests_own_url(client):
    response = client.get("/iiif/3/maps/quadrants/info.json", base_url="https://api.example.org/dev")
    info = response.get_json()
    assert response.headers["Content-Type"] == "application/json"
    assert info["id"] == "https://api.example.org/dev/iiif/3/maps/quadrants"  # behind a stage prefix too
    assert (info["@context"], info["type"], info["protocol"], info["profile"]) == (
        "http://iiif.io/api/image/3/context.json",
        "ImageService3",
        "http://iiif.io/api/image",
        "level2",
    )
    assert (info["width"], info["height"]) == (800, 600)
    settings = Settings()  # the defaults: the test environment sets none of these
    assert (info["maxWidth"], info["maxHeight"], info["maxArea"]) == (
        settings.iiif_max_width,
        settings.iiif_max_height,
        settings.iiif_max_area,
    )
    assert info["sizes"] == [{"width": 400, "height": 300}, {"width": 800, "height": 600}]
    assert info["tiles"] == [{"width": 512, "height": 512, "scaleFactors": [1, 2]}]
    assert set(info["extraFeatures"]) >= {"mirroring", "rotationArbitrary", "sizeUpscaling", "canonicalLinkHeader"}
    assert info["extraFormats"] == ["tif", "webp"] and info["extraQualities"] == ["color", "gray", "bitonal"]
    assert list(json.loads(response.data))[0] == "@context"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "private, max-age=300"  # its id came from the Host header
    assert {"Accept", "Host"} <= set(response.vary)


def test_info_json_is_json_ld_when_asked_and_revalidates_by_etag(client):
    response = client.get("/iiif/3/maps/quadrants/info.json", headers={"Accept": "application/ld+json"})
    assert response.headers["Content-Type"] == 'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'
    again = client.get(
        "/iiif/3/maps/quadrants/info.json",
        headers={"Accept": "application/ld+json", "If-None-Match": response.headers["ETag"]},
    )
    assert again.status_code == 304
    plain = client.get("/iiif/3/maps/quadrants/info.json", headers={"If-None-Match": response.headers["ETag"]})
    assert plain.status_code == 200 and plain.headers["Content-Type"] == "application/json"


def test_the_base_uri_redirects_to_info_json(client):
    response = client.get("/iiif/3/maps/quadrants", base_url="https://api.example.org/dev")
    assert response.status_code == 303
    assert response.headers["Location"] == "https://api.example.org/dev/iiif/3/maps/quadrants/info.json"


def test_images_carry_media_type_canonical_and_profile_links_cache_and_cors(client):
    response = client.get("/iiif/3/maps/quadrants/square/^!1000,1000/!90/gray.png")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Link"] == (
        "<http://localhost/iiif/3/maps/quadrants/100,0,600,600/%5E1000,1000/!90/"
        'gray.png>;rel="canonical",<http://iiif.io/api/image/3/level2.json>;rel="profile"'
    )
    assert response.headers["Cache-Control"] == "private, max-age=86400"  # no DASHBOARD_BASE_URL: Link names the Host
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    again = client.get(
        "/iiif/3/maps/quadrants/square/^!1000,1000/!90/gray.png", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304 and not again.data


@pytest.mark.parametrize(
    "fmt,media_type,magic",
    [
        ("jpg", "image/jpeg", b"\xff\xd8\xff"),
        ("png", "image/png", b"\x89PNG"),
        ("webp", "image/webp", b"RIFF"),
        ("tif", "image/tiff", b"II*\x00"),
    ],
)
def test_every_format_has_its_media_type_and_bytes(client, fmt, media_type, magic):
    response = client.get(f"/iiif/3/maps/quadrants/full/200,/0/default.{fmt}")
    assert response.headers["Content-Type"] == media_type
    assert response.data.startswith(magic)
    assert (_image(response).width, _image(response).height) == (200, 150)


def test_region_size_mirror_and_rotation_move_the_right_pixels(client):
    tile = _image(client.get("/iiif/3/maps/quadrants/400,0,400,300/100,/0/default.png"))
    assert (tile.width, tile.height) == (100, 75) and _near(tile(50, 37), QUADRANTS[1], 5)
    turned = _image(client.get("/iiif/3/maps/quadrants/full/400,/90/default.png"))  # clockwise
    assert (turned.width, turned.height) == (300, 400)
    assert _near(turned(10, 10), QUADRANTS[2]) and _near(turned(290, 10), QUADRANTS[0])
    mirrored = _image(client.get("/iiif/3/maps/quadrants/full/400,/!0/default.png"))
    assert _near(mirrored(10, 10), QUADRANTS[1]) and _near(mirrored(390, 290), QUADRANTS[2])
    both = _image(client.get("/iiif/3/maps/quadrants/full/400,/!180/default.png"))
    assert _near(both(10, 10), QUADRANTS[2])


def test_arbitrary_angles_leave_transparent_corners_or_white_in_jpeg(client):
    png = _image(client.get("/iiif/3/maps/quadrants/full/400,/45/default.png"))
    assert png.bands == 4 and png(0, 0)[3] == 0
    jpeg = _image(client.get("/iiif/3/maps/quadrants/full/400,/45/default.jpg"))
    assert jpeg.bands == 3 and _near(jpeg(0, 0), [255, 255, 255], 10)
    assert png.width == png.height == round((400 + 300) / 2**0.5)


def test_gray_and_bitonal_qualities(client):
    gray = _image(client.get("/iiif/3/maps/quadrants/full/200,/0/gray.png"))
    assert gray.bands == 1
    bitonal = _image(client.get("/iiif/3/maps/quadrants/full/200,/0/bitonal.png"))
    assert bitonal.bands == 1 and ((bitonal > 0) & (bitonal < 255)).max() == 0  # only black and white


def _published(served, key):
    return pyvips.Image.new_from_buffer(
        served.cloud.s3.get_object(Bucket=served.settings.tiles_bucket, Key=key)["Body"].read(), ""
    )


def test_tiles_are_the_published_tiles_pixels_from_the_right_level(served):
    served.put("photo", photo(2000, 1500))  # Deep Zoom levels 11 (2000x1500) and 10 (1000x750)
    client = served.client()
    tile = _image(client.get("/iiif/3/photo/1024,512,512,512/max/0/default.png"))
    assert (tile - _published(served, "photo_files/11/2_1.jpg")).abs().max() == 0
    scaled = _image(client.get("/iiif/3/photo/0,0,1024,1024/512,/0/default.png"))  # the half-size level, as is
    assert (scaled - _published(served, "photo_files/10/0_0.jpg")).abs().max() == 0


def test_a_region_across_tiles_is_the_published_tiles_joined(served):
    served.put("photo", photo(2000, 1500))
    level = [[_published(served, f"photo_files/11/{c}_{r}.jpg") for c in range(4)] for r in range(3)]
    whole = pyvips.Image.arrayjoin([t for row in level for t in row], across=4)
    crop = _image(served.client().get("/iiif/3/photo/300,400,1500,900/max/0/default.png"))
    assert (crop.width, crop.height) == (1500, 900)
    assert (crop - whole.crop(300, 400, 1500, 900)).abs().max() == 0  # every seam in place, no pixel moved


def test_a_republished_image_is_never_answered_from_its_old_tiles(served):
    served.put("photo", solid(600, 400, [255, 0, 0]), version="1" * 32)
    client = served.client()
    red = _image(client.get("/iiif/3/photo/0,0,100,100/max/0/default.png"))
    served.put("photo", solid(600, 400, [0, 0, 255]), version="2" * 32)
    blue = _image(client.get("/iiif/3/photo/0,0,100,100/max/0/default.png"))
    assert _near(red(50, 50), [255, 0, 0], 5) and _near(blue(50, 50), [0, 0, 255], 5)


def test_tiles_read_while_a_new_version_went_up_are_forgotten_once_it_is_published(served):
    """During a re-publication the record still names the old version while the new tiles are already there: what
    is read then is the new pixels under the old name. Once the record names the new version, the old name's tiles
    are dropped, so the old version published again (the same ETag) is read afresh."""
    red, blue = solid(600, 400, [255, 0, 0]), solid(600, 400, [0, 0, 255])
    old = served.put("photo", red)
    client = served.client()
    path = "/iiif/3/photo/0,0,100,100/max/0/default.png"
    served.put("photo", blue, record=False)  # the new version's tiles, the record not written yet
    assert _near(_image(client.get(path))(50, 50), [0, 0, 255], 5)  # the window static viewers have too
    served.put("photo", blue)  # the record names the new version
    assert _near(_image(client.get(path))(50, 50), [0, 0, 255], 5)
    served.put("photo", red, version=old)  # the old bytes again: S3 gives them the old ETag
    assert _near(_image(client.get(path))(50, 50), [255, 0, 0], 5)


def test_an_image_without_published_tiles_is_not_found(client):
    response = client.get("/iiif/3/maps/elsewhere/full/max/0/default.jpg")
    assert response.status_code == 404
    assert response.get_data(as_text=True) == "no such image\n"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert client.get("/iiif/3/maps/elsewhere/info.json").status_code == 404


def test_storage_failures_are_unavailable_not_errors(client, monkeypatch):
    def failing(*args, **kwargs):
        raise TransientError("S3 SlowDown")

    from app.storage import tile_pyramid

    tile_pyramid.TILES.clear()
    monkeypatch.setattr(S3Storage, "read_bytes", failing)
    response = client.get("/iiif/3/maps/quadrants/0,0,10,10/max/0/default.jpg")
    assert response.status_code == 503 and "S3 SlowDown" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
