"""Answers too big for a Lambda response are stored once in the tiles bucket and redirected to, never a 502."""

from __future__ import annotations

import base64
import json
import sys
import types
import urllib.request
from urllib.parse import quote

import pytest
import pyvips
from zappa.handler import LambdaHandler

from app import outputs
from app.iiif.request import MEDIA_TYPES, Limits, parse, plan
from app.pipeline import render
from app.storage.s3 import TILE_CACHE, S3Storage
from app.storage.tile_pyramid import TileCache, TilePyramid
from app.web import oversize
from tooling.synth import photo_like

ID = "photos/large"
PHOTO = (2600, 1700)  # 4.4 MP, above the default maxArea: full/max is cut to it
direct_render = render.render  # the real one, for references, whatever the tests wrap


@pytest.fixture(scope="module")
def photo_tiff(tmp_path_factory):
    """A noisy photo-like image, made once: PNG and TIFF answers of it compress as poorly as a photo's."""
    path = tmp_path_factory.mktemp("photo") / "photo.tif"
    photo_like(*PHOTO).write_to_file(str(path))
    return path


@pytest.fixture
def renders(monkeypatch) -> list[str]:
    """The canonical path of every render the endpoint starts."""
    calls: list[str] = []

    def counted(wanted, *args):
        calls.append(wanted.canonical)
        return direct_render(wanted, *args)

    monkeypatch.setattr(render, "render", counted)
    return calls


@pytest.fixture
def cache_heads(monkeypatch) -> list[str]:
    """The keys under cache/ the endpoint looks up."""
    keys: list[str] = []
    real = S3Storage.head

    def counted(storage, ref):
        if ref.key.startswith(outputs.ANSWERS_PREFIX):
            keys.append(ref.key)
        return real(storage, ref)

    monkeypatch.setattr(S3Storage, "head", counted)
    return keys


def _put(served, image, version: str | None = None) -> str:
    """Publish ``image`` as ID at ``version`` (the published source's ETag; a fresh one by default); that version."""
    if not isinstance(image, pyvips.Image):
        image = pyvips.Image.new_from_file(str(image))
    return served.put(ID, image, version)


def _direct(served, version: str, params: str) -> tuple[str, pyvips.Image]:
    """(canonical path, pixels) of ``params`` rendered straight from the local tiles of ``version``, no endpoint
    or S3 involved."""
    settings = served.settings
    root = served.tmp_path / "published" / version
    record = served.cloud.record(ID)["published"]
    tiles = TilePyramid(
        ID, record["width"], record["height"], 512, "direct", lambda key: (root / key).read_bytes(), TileCache(1 << 26)
    )
    pyramid = tiles.pyramid
    limits = Limits(settings.iiif_max_width, settings.iiif_max_height, settings.iiif_max_area)
    wanted = plan(parse(*params.replace(".", "/").split("/")), pyramid.width, pyramid.height, limits)
    return wanted.canonical, pyvips.Image.new_from_buffer(
        direct_render(wanted, pyramid, tiles.crop, settings.jpeg_quality), ""
    )


def _fetch(url: str) -> tuple[bytes, str, str]:
    """(body, Content-Type, Cache-Control) of ``url``, over HTTP from the S3 endpoint."""
    with urllib.request.urlopen(url) as answer:
        return answer.read(), answer.headers["Content-Type"], answer.headers["Cache-Control"]


def _same_pixels(a: pyvips.Image, b: pyvips.Image) -> bool:
    return (a.width, a.height, a.bands) == (b.width, b.height, b.bands) and (
        a.cast("int") - b.cast("int")
    ).abs().max() == 0


@pytest.mark.parametrize("fmt", ["png", "tif"])
@pytest.mark.parametrize("size", ["max", "2048,"])  # the advertised maxArea; the 2048-wide photo
def test_large_answers_are_stored_once_and_redirected_to(served, photo_tiff, renders, fmt, size):
    """All four are 5.9 to 11 MB: a body that large would be a 502 behind API Gateway."""
    etag = _put(served, photo_tiff)
    params = f"full/{size}/0/default.{fmt}"
    canonical, expected = _direct(served, etag, params)
    if size == "max":
        area = served.settings.iiif_max_area
        assert area - max(PHOTO) < expected.width * expected.height <= area

    first = served.client().get(f"/iiif/3/{ID}/{params}")

    assert first.status_code == 302, first.get_data(as_text=True)
    key = f"cache/iiif/3/{ID}/{etag}/{canonical}"
    assert first.headers["Location"] == f"{served.settings.public_base_url}/{key}"
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert first.headers["Link"].startswith(f'<http://localhost/iiif/3/{ID}/{canonical}>;rel="canonical"')
    assert first.headers["Cache-Control"] == TILE_CACHE.replace("public", "private")  # its Link names the Host
    body, content_type, cache_control = _fetch(first.headers["Location"])
    assert len(body) > oversize.MAX_INLINE_BYTES
    assert (content_type, cache_control) == (MEDIA_TYPES[fmt], TILE_CACHE)
    assert _same_pixels(pyvips.Image.new_from_buffer(body, ""), expected)
    assert renders == [canonical]

    again = served.client().get(f"/iiif/3/{ID}/{params}")  # a new app: the stored object answers, not memory
    assert (again.status_code, again.headers["Location"]) == (302, first.headers["Location"])
    assert renders == [canonical]  # answered from the stored object, not rendered again
    assert served.cloud.tiles("cache/") == {key}


@pytest.mark.parametrize("size, looked_up", [("400,", False), ("max", True)])
def test_jpeg_answers_stay_inline(served, photo_tiff, cache_heads, size, looked_up):
    """A small answer is not even looked up in the cache; one that could be large is, and still fits inline."""
    etag = _put(served, photo_tiff)
    params = f"full/{size}/0/default.jpg"
    _, expected = _direct(served, etag, params)

    response = served.client().get(f"/iiif/3/{ID}/{params}")

    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
    assert len(response.data) <= oversize.MAX_INLINE_BYTES
    image = pyvips.Image.new_from_buffer(response.data, "")
    assert (image.width, image.height) == (expected.width, expected.height)
    assert bool(cache_heads) == looked_up
    assert served.cloud.tiles("cache/") == set()


def test_a_replaced_image_is_rendered_anew_under_its_new_version(served, renders, monkeypatch):
    monkeypatch.setattr(oversize, "MAX_INLINE_BYTES", 50_000)  # small photos pass it, to keep the test quick
    path = f"/iiif/3/{ID}/full/max/0/default.png"
    old = _put(served, photo_like(400, 300, seed=1), "1" * 32)
    first = served.client().get(path)
    new = _put(served, photo_like(400, 300, seed=2), "2" * 32)
    second = served.client().get(path)

    assert old != new
    assert first.status_code == second.status_code == 302
    assert f"/cache/iiif/3/{ID}/{old}/" in first.headers["Location"]
    assert f"/cache/iiif/3/{ID}/{new}/" in second.headers["Location"]
    assert len(renders) == 2
    _, expected = _direct(served, new, "full/max/0/default.png")
    assert _same_pixels(pyvips.Image.new_from_buffer(_fetch(second.headers["Location"])[0], ""), expected)


def test_a_tile_too_big_for_a_lambda_response_is_a_redirect_to_the_published_tile(served, monkeypatch):
    """Exact tiles are answered with their published bytes: with a large TILE_SIZE one can pass the limit, and is
    then redirected to, as published, never a 502."""
    monkeypatch.setattr(oversize, "MAX_INLINE_BYTES", 50_000)  # a 512 px photo tile passes it
    served.put(ID, photo_like(1000, 700))
    tile = served.cloud.read(served.settings.tiles_bucket, f"{ID}_files/10/0_0.jpg")
    assert len(tile) > oversize.MAX_INLINE_BYTES
    response = served.client().get(f"/iiif/3/{ID}/0,0,512,512/512,512/0/default.jpg")
    assert response.status_code == 302
    assert response.headers["Location"] == f"{served.settings.public_base_url}/{ID}_files/10/0_0.jpg"
    assert _fetch(response.headers["Location"])[0] == tile
    assert served.cloud.tiles("cache/") == set()  # nothing stored again


def test_the_redirect_target_is_a_url_even_for_upscaled_canonical_paths(served, monkeypatch):
    """``^`` is not a URL character: the Location escapes it, and S3 finds the key."""
    monkeypatch.setattr(oversize, "MAX_INLINE_BYTES", 50_000)
    served.put(ID, photo_like(300, 200))
    response = served.client().get(f"/iiif/3/{ID}/full/^450,300/!0/gray.png")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(quote("/full/^450,300/!0/gray.png", safe="/,!"))
    image = pyvips.Image.new_from_buffer(_fetch(response.headers["Location"])[0], "")
    assert (image.width, image.height, image.bands) == (450, 300, 1)


def test_an_answer_of_the_limit_fits_a_lambda_response_after_zappas_base64(served, monkeypatch):
    """The endpoint's answer of exactly MAX_INLINE_BYTES through Zappa's own handler as deployed (REST API event,
    binary_support), then JSON as Lambda sends it: under 6,291,456 bytes, headers (twice) and envelope included."""
    long_id = "/".join(["a" * 100] * 5)  # near MAX_ID_LENGTH: the longest Link header
    served.put(long_id, photo_like(300, 200))
    monkeypatch.setattr(render, "render", lambda *args: bytes(oversize.MAX_INLINE_BYTES))
    settings = types.ModuleType("zappa_settings_of_the_limit_test")
    settings.__dict__.update(
        API_STAGE="dev",
        PROJECT_NAME="tiler",
        APP_MODULE=settings.__name__,
        APP_FUNCTION="app",
        app=served.app(),
        BINARY_SUPPORT=True,
        DEBUG=False,
        LOG_LEVEL=None,
        DJANGO_SETTINGS=None,
        DOMAIN=None,
        ENVIRONMENT_VARIABLES={},
        CONTEXT_HEADER_MAPPINGS={},
        EXCEPTION_HANDLER=None,
    )
    monkeypatch.setitem(sys.modules, settings.__name__, settings)
    monkeypatch.setattr(LambdaHandler, "_LambdaHandler__instance", None)  # a singleton: ours, for this test only
    for name in ("SERVERTYPE", "FRAMEWORK", "PROJECT", "STAGE"):
        monkeypatch.setenv(name, "")  # the handler sets them; restored afterwards
    headers = {"Host": "abc123.execute-api.eu-west-1.amazonaws.com", "Accept": "image/png"}
    event = {
        "httpMethod": "GET",
        "path": f"/iiif/3/{long_id}/full/max/0/default.png",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {"stage": "dev"},
        "body": None,
        "isBase64Encoded": False,
    }

    answer = LambdaHandler(settings.__name__).handler(event, None)

    assert (answer["statusCode"], answer["isBase64Encoded"]) == (200, True), answer.get("body", "")[:200]
    assert len(base64.b64decode(answer["body"])) == oversize.MAX_INLINE_BYTES
    assert long_id in answer["headers"]["Link"] and answer["multiValueHeaders"]["Link"] == [answer["headers"]["Link"]]
    assert len(json.dumps(answer).encode()) < oversize.LAMBDA_RESPONSE_LIMIT


def test_a_large_2_1_answer_is_stored_once_for_both_versions(served, renders, monkeypatch):
    """Under the 3.0 canonical path of the same pixels: the 3.0 request finds the 2.1 one's copy, not rendered again."""
    monkeypatch.setattr(oversize, "MAX_INLINE_BYTES", 50_000)
    etag = _put(served, photo_like(400, 300, seed=3))
    first = served.client().get(f"/iiif/2/{ID}/full/full/0/default.png")
    assert first.status_code == 302
    assert first.headers["Location"].endswith(f"/cache/iiif/3/{ID}/{etag}/full/max/0/default.png")
    assert first.headers["Link"].startswith(f'<http://localhost/iiif/2/{ID}/full/full/0/default.png>;rel="canonical"')
    body = _fetch(first.headers["Location"])[0]
    assert (pyvips.Image.new_from_buffer(body, "").width, renders) == (400, ["full/full/0/default.png"])
    three = served.client().get(f"/iiif/3/{ID}/full/max/0/default.png")
    assert (three.headers["Location"], len(renders)) == (first.headers["Location"], 1)
