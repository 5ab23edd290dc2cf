"""The dynamic endpoint in Image API 2.1 (/iiif/2): its grammar, info.json and canonical forms, the same pixels
as /iiif/3, and redirects to what the conversion published."""

import json

import pyvips

from tests.helpers import solid

QUADRANTS = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]]


def _quadrants(width=800, height=600) -> pyvips.Image:
    half = (width // 2, height // 2)
    top = solid(*half, QUADRANTS[0]).join(solid(*half, QUADRANTS[1]), "horizontal")
    return top.join(solid(*half, QUADRANTS[2]).join(solid(*half, QUADRANTS[3]), "horizontal"), "vertical")


def _image(response) -> pyvips.Image:
    assert response.status_code == 200, response.get_data(as_text=True)
    return pyvips.Image.new_from_buffer(response.data, "")


def _client(served):
    served.put("maps/quadrants", _quadrants())
    return served.client()


def test_info_json_is_a_2_1_level2_description_naming_its_3_0_twin(served):
    client = _client(served)
    response = client.get("/iiif/2/maps/quadrants/info.json", base_url="https://api.example.org/dev")
    info = response.get_json()
    assert list(json.loads(response.data))[0] == "@context"
    assert info["@context"] == "http://iiif.io/api/image/2/context.json"
    assert info["@id"] == "https://api.example.org/dev/iiif/2/maps/quadrants"
    assert info["protocol"] == "http://iiif.io/api/image" and (info["width"], info["height"]) == (800, 600)
    profile, description = info["profile"]
    assert profile == "http://iiif.io/api/image/2/level2.json"
    assert set(description["qualities"]) == {"default", "color", "gray", "bitonal"}
    assert set(description["formats"]) == {"jpg", "png", "webp", "tif"}
    assert {"mirroring", "rotationArbitrary", "sizeAboveFull", "regionSquare"} <= set(description["supports"])
    assert description["maxWidth"] == served.settings.iiif_max_width
    assert info["tiles"] == [{"width": 512, "height": 512, "scaleFactors": [1, 2]}]
    assert info["service"][0]["id"] == "https://api.example.org/dev/iiif/3/maps/quadrants"
    assert response.headers["Link"] == '<http://iiif.io/api/image/2/level2.json>;rel="profile"'
    three = client.get("/iiif/3/maps/quadrants/info.json", base_url="https://api.example.org/dev").get_json()
    assert three["service"] == [
        {"@id": info["@id"], "@type": "ImageService2", "profile": "http://iiif.io/api/image/2/level2.json"}
    ]
    ld = client.get("/iiif/2/maps/quadrants/info.json", headers={"Accept": "application/ld+json"})
    assert ld.headers["Content-Type"] == 'application/ld+json;profile="http://iiif.io/api/image/2/context.json"'
    base = client.get("/iiif/2/maps/quadrants")
    assert base.status_code == 303 and base.headers["Location"] == "http://localhost/iiif/2/maps/quadrants/info.json"


def test_2_1_sizes_full_and_w_comma_upscale_without_a_caret_and_link_the_2_1_canonical_form(served):
    client = _client(served)
    full = client.get("/iiif/2/maps/quadrants/full/full/0/default.jpg")
    assert (_image(full).width, _image(full).height) == (800, 600)
    assert full.headers["Link"].startswith("<http://localhost/iiif/2/maps/quadrants/full/full/0/default.jpg>")
    tile = client.get("/iiif/2/maps/quadrants/400,0,400,300/100,/0/default.png")
    assert (_image(tile).width, _image(tile).height) == (100, 75)
    assert tile.headers["Link"] == (
        '<http://localhost/iiif/2/maps/quadrants/400,0,400,300/100,/0/default.png>;rel="canonical",'
        '<http://iiif.io/api/image/2/level2.json>;rel="profile"'
    )
    region_full = client.get("/iiif/2/maps/quadrants/0,0,400,600/full/0/default.jpg")  # unscaled: a 2.1 "full"
    assert _image(region_full).width == 400 and region_full.headers["Link"].startswith(
        "<http://localhost/iiif/2/maps/quadrants/0,0,400,600/400,/0/default.jpg>"
    )
    up = client.get("/iiif/2/maps/quadrants/full/1600,/0/default.jpg")  # 2.1 upscales without ^
    assert (_image(up).width, _image(up).height) == (1600, 1200)
    stretched = client.get("/iiif/2/maps/quadrants/full/100,100/!90/gray.png")
    assert stretched.headers["Link"].startswith("<http://localhost/iiif/2/maps/quadrants/full/100,100/!90/gray.png>")
    assert _image(stretched).bands == 1
    assert client.get("/iiif/2/maps/quadrants/full/^200,/0/default.jpg").status_code == 400  # no ^ in 2.1
    assert client.get("/iiif/3/maps/quadrants/full/full/0/default.jpg").status_code == 400  # no full in 3.0
    served.limit(iiif_max_width=500)
    assert served.client().get("/iiif/2/maps/quadrants/full/full/0/default.jpg").status_code == 403
    assert _image(served.client().get("/iiif/2/maps/quadrants/full/max/0/default.jpg")).width == 500


def test_both_versions_render_the_same_plan_into_the_same_bytes(served):
    client = _client(served)
    pairs = [
        ("400,0,400,300/100,/0/default.jpg", "400,0,400,300/100,75/0/default.jpg"),
        ("square/full/!90/bitonal.png", "square/max/!90/bitonal.png"),
        ("pct:10,10,50,50/!100,100/45/color.webp", "pct:10,10,50,50/!100,100/45/color.webp"),
    ]
    for two, three in pairs:
        assert _image(client.get(f"/iiif/2/maps/quadrants/{two}")).width > 0
        assert client.get(f"/iiif/2/maps/quadrants/{two}").data == client.get(f"/iiif/3/maps/quadrants/{three}").data


def _record(served, image_id, **fields):
    served.record(image_id, status="done", tile_size=512, **fields)


def test_a_tile_is_answered_with_its_published_bytes_under_either_versions_name(served):
    """Not a rendering of them (which would be encoded again): the Deep Zoom tile, which each published level-0
    name (3.0, 2.1) is a copy of; whatever is not exactly a tile is rendered."""
    served.put("maps/quadrants", _quadrants(), static=(2, 3))
    client = served.client()
    tiles = served.settings.tiles_bucket
    for asked, published in [
        (
            "iiif/2/maps/quadrants/0,0,512,512/512,/0/default.jpg",
            "iiif/2/maps/quadrants/0,0,512,512/512,/0/default.jpg",
        ),
        ("iiif/3/maps/quadrants/0,0,512,512/512,512/0/default.jpg", "maps/quadrants/0,0,512,512/512,512/0/default.jpg"),
        ("iiif/2/maps/quadrants/full/400,/0/default.jpg", "iiif/2/maps/quadrants/full/400,/0/default.jpg"),
    ]:
        answer = client.get(f"/{asked}")
        assert (answer.status_code, answer.content_type) == (200, "image/jpeg"), asked
        assert answer.data == served.cloud.read(tiles, published), asked
        assert client.get(f"/{asked}", headers={"If-None-Match": answer.headers["ETag"]}).status_code == 304
    top_left = served.cloud.read(tiles, "maps/quadrants_files/10/0_0.jpg")
    assert served.cloud.read(tiles, "maps/quadrants/0,0,512,512/512,512/0/default.jpg") == top_left
    for not_a_tile in (
        "0,0,512,512/512,/0/gray.jpg",
        "0,0,512,512/256,/0/default.jpg",
        "0,0,512,500/512,/0/default.jpg",
    ):
        answer = client.get(f"/iiif/2/maps/quadrants/{not_a_tile}")
        assert answer.status_code == 200 and answer.data != top_left, not_a_tile
    served.put("maps/quadrants", _quadrants())  # the record names no static names: the tile is still the tile
    assert served.client().get("/iiif/2/maps/quadrants/0,0,512,512/512,/0/default.jpg").data == top_left


def test_an_image_published_only_in_2_1_answers_3_0_tile_requests_with_the_2_1_file(served):
    served.put("solo", _quadrants(1200, 600), static=(2,))
    three = served.client().get("/iiif/3/solo/512,0,512,512/512,512/0/default.jpg")
    assert three.data == served.cloud.read(served.settings.tiles_bucket, "iiif/2/solo/512,0,512,512/512,/0/default.jpg")
