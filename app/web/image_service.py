"""The dynamic IIIF Image API level 2 endpoint, in 3.0 (``/iiif/3``) and 2.1 (``/iiif/2``): any region, size,
rotation, quality and format, on demand.

Both versions are one endpoint: each parses its own grammar into the same
``Plan`` and renders it with the same function, so whatever the pixels come
from serves both; only the grammar, ``info.json``'s vocabulary, the canonical
form and the profile differ. A request for exactly one tile of the pyramid is
answered with that tile's bytes as published (the same pixels, encoded once,
and no second hop for the viewer); a named derivative, which may be large,
with a redirect to it.

Rendered from the image's published Deep Zoom tiles (``ID_files/L/C_R.jpg``,
see ``app.storage.tile_pyramid``): the job record (one GET) gives the
published version and its size, then the tiles a request's region touches at
the smallest level with enough pixels are fetched in parallel, joined and
cropped; whatever can be fetched before the record is in (``_locate``'s
``meanwhile``) is, so a request costs one round trip. Every
absolute URL is built by ``app.web.urls.external_url``: on DASHBOARD_BASE_URL
when set, so ``id`` and the canonical ``Link`` never come from the Host header. Errors are a short
text with their IIIF status (400, 403, 404, 501, 503), with CORS like every
other answer, so viewers on other sites can read them.

An answer too big for a Lambda response (``oversize.MAX_INLINE_BYTES``: a
full-size PNG or TIFF of a photo reaches it well within maxArea) is written
once to ``cache/iiif/3/ID/ETAG/...`` in the tiles bucket, ETAG being the
published version's (the source's ETag), and answered with a redirect there; a request that could be
that big looks for the stored answer (one HEAD) before rendering. A 2.1
answer is stored under the 3.0 canonical path of the same pixels, so both
versions share one copy.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, redirect, request

from app import outputs, records
from app.errors import SourceGone, TilerError
from app.ids import is_valid_id
from app.iiif import grid
from app.iiif.info import CONTEXT, CONTEXT_2, LEVEL2_PROFILE, LEVEL2_PROFILE_2, level2, level2_v2
from app.iiif.paths import service_path
from app.iiif.request import (
    Limits,
    NotFound,
    Plan,
    RequestError,
    Unavailable,
    canonical_v3,
    parse,
    plan,
)
from app.model import SourceRef
from app.pipeline import render as rendering
from app.pipeline.inspect import harden_libvips
from app.storage.s3 import DESCRIPTOR_CACHE, TILE_CACHE, S3Storage
from app.storage.tile_pyramid import TILES, TilePyramid
from app.web import oversize
from app.web.urls import external_url
from config import Settings

image_service = Blueprint("image_service", __name__, url_prefix="/iiif/3")
image_service_v2 = Blueprint("image_service_v2", __name__, url_prefix="/iiif/2")


@dataclass(frozen=True)
class _Version:
    """What differs between the versions at the HTTP edge."""

    number: int
    blueprint: str
    context: str
    profile: str
    other: str  # the blueprint of the other version, which info.json names


VERSIONS = {
    "image_service": _Version(3, "image_service", CONTEXT, LEVEL2_PROFILE, "image_service_v2"),
    "image_service_v2": _Version(2, "image_service_v2", CONTEXT_2, LEVEL2_PROFILE_2, "image_service"),
}


def register(app: Flask) -> None:
    """Serve both versions of the endpoint from ``app`` (idempotent)."""
    for blueprint in (image_service, image_service_v2):
        if blueprint.name not in app.blueprints:
            app.register_blueprint(blueprint)


def _version() -> _Version:
    return VERSIONS[request.blueprint]


def base(image_id: str):
    """The base URI redirects to the image information, as the specification asks."""
    _check_id(image_id)
    return redirect(external_url(f"{_version().blueprint}.info", image_id=image_id), code=303)


def info(image_id: str):
    version = _version()
    found = _locate(image_id)
    tiles = found.tiles
    service_id, limits = external_url(f"{version.blueprint}.base", image_id=image_id), _limits()
    twin = external_url(f"{version.other}.base", image_id=image_id)
    levels = grid.scale_factors(tiles.width, tiles.height, tiles.tile_size)
    pages = tiles.pyramid.pages[: len(levels)]  # down to the level that fits one tile, as the tiles declare
    if version.number == 3:
        document = level2(service_id, pages, limits, v2_service=twin, tile_size=tiles.tile_size)
    else:
        document = level2_v2(service_id, pages, limits, v3_service=twin, tile_size=tiles.tile_size)
    wants_ld = request.accept_mimetypes["application/ld+json"] > request.accept_mimetypes["application/json"]
    json_ld = f'application/ld+json;profile="{version.context}"'
    response = Response(
        json.dumps(document, indent=2), mimetype=None, content_type=json_ld if wants_ld else "application/json"
    )
    response.headers["Link"] = f'<{version.profile}>;rel="profile"'
    response.headers["Cache-Control"] = DESCRIPTOR_CACHE
    response.vary.add("Accept")
    response.set_etag(_etag(tiles.version, tiles.tile_size, service_id, limits, wants_ld))
    return response.make_conditional(request)


def image(image_id: str, region: str, size: str, rotation: str, quality: str, fmt: str):
    version = _version()
    _check_id(image_id)
    parsed = parse(region, size, rotation, quality, fmt, version.number)  # malformed requests never reach S3
    limits = _limits()
    jpeg_quality = _settings().jpeg_quality
    ahead = _Ahead()

    def meanwhile(guess: _Found | None) -> None:
        """While the record is on its way: this request's answer from the image as this process saw it last (its
        tile, or its rendering from the tiles it touches), kept under that version and used only if the record
        still names it. A process that has not seen the image fetches the request's own path instead: a viewer
        asks for a tile by the name it is published under."""
        if guess is None:
            asked = f"{region}/{size}/{rotation}/{quality}.{fmt}"
            if _TILE_SHAPED.fullmatch(asked):
                ahead.fetch(f"{service_path(version.number, image_id)}/{asked}")
            return
        tiles = guess.tiles
        try:
            wanted = plan(parsed, tiles.width, tiles.height, limits, version.number)
        except RequestError:
            return  # refused: nothing of the image is read
        tile = _tile_of(tiles, wanted)
        if tile is not None:
            if not request.if_none_match.contains(_etag(tiles.version, tile.dz_path(image_id))):
                ahead.take_tile(tiles, tile)
        elif not (
            oversize.may_exceed(wanted)
            or _named_derivative(guess.made, image_id, wanted, tiles.pyramid)
            or request.if_none_match.contains(_etag(tiles.version, wanted.canonical, jpeg_quality))
        ):
            ahead.render(tiles, wanted, jpeg_quality)

    found = _locate(image_id, meanwhile)
    tiles = found.tiles
    pyramid = tiles.pyramid
    wanted = plan(parsed, pyramid.width, pyramid.height, limits, version.number)
    service = external_url(f"{version.blueprint}.base", image_id=image_id)
    canonical = service + "/" + quote(wanted.canonical, safe="/,:!")
    headers = {"Link": f'<{canonical}>;rel="canonical",<{version.profile}>;rel="profile"', "Cache-Control": TILE_CACHE}
    named = _named_derivative(found.made, image_id, wanted, pyramid)
    if named:
        return redirect(f"{_settings().public_base_url.rstrip('/')}/{named}", 302, Response=_Redirect)
    tile = _tile_of(tiles, wanted)
    if tile is not None:  # exactly one tile: its published bytes, the same pixels without another encode
        etag = _etag(tiles.version, tile.dz_path(image_id))
        if request.if_none_match.contains(etag):
            return _not_modified(etag, headers)
        body = _tile_bytes(found, tile, ahead, version.number)
        if len(body) > oversize.MAX_INLINE_BYTES:  # a large TILE_SIZE: the tile itself is public, and whole
            return _redirect_to_cached(tile.dz_path(image_id), headers)
        return _answer(body, "image/jpeg", etag, headers)
    etag = _etag(tiles.version, wanted.canonical, jpeg_quality)
    if request.if_none_match.contains(etag):
        return _not_modified(etag, headers)
    # kept under the 3.0 canonical path of the same pixels, whichever version asked: one copy, one takedown rule
    stored_as = canonical_v3(wanted, pyramid.width, pyramid.height, _limits())
    cached = outputs.stored_answer_key(image_id, tiles.version, stored_as)
    storage = _storage(_settings().upload_workers)
    if oversize.may_exceed(wanted) and _exists(storage, cached):
        return _redirect_to_cached(cached, headers)
    body = ahead.rendered.get((tiles.version, wanted.canonical)) or _rendered(tiles, wanted)
    if len(body) > oversize.MAX_INLINE_BYTES:
        _put_cached(storage, cached, body, wanted.media_type)
        return _redirect_to_cached(cached, headers)
    return _answer(body, wanted.media_type, etag, headers)


def _answer(body: bytes, media_type: str, etag: str, headers: dict[str, str]) -> Response:
    response = Response(body, content_type=media_type, headers=headers)
    response.set_etag(etag)
    return response


def _not_modified(etag: str, headers: dict[str, str]) -> Response:
    return Response(status=304, headers={**headers, "ETag": f'"{etag}"'})


class _Ahead:
    """What a request fetched or rendered while its record was read: used only if the record agrees."""

    def __init__(self) -> None:
        self.fetched: dict[str, bytes] = {}  # a published level-0 path -> its bytes
        self.tiles: dict[tuple[str, str], bytes] = {}  # (version, Deep Zoom key) -> the tile's bytes
        self.rendered: dict[tuple[str, str], bytes] = {}  # (version, canonical) -> the answer

    def fetch(self, path: str) -> None:
        try:
            self.fetched[path] = _storage(_settings().upload_workers).read_bytes(_settings().tiles_bucket, path)
        except Exception:  # noqa: BLE001 - a guess (most often: no such object); the record decides what to read
            return

    def take_tile(self, tiles: TilePyramid, tile: grid.Tile) -> None:
        try:
            self.tiles[(tiles.version, tile.dz_path(tiles.image_id))] = tiles.encoded(tile)
        except Exception:  # noqa: BLE001 - the image may have changed since: the request reads what the record says
            return

    def render(self, tiles: TilePyramid, wanted: Plan, jpeg_quality: int) -> None:
        try:
            self.rendered[(tiles.version, wanted.canonical)] = rendering.render(
                wanted, tiles.pyramid, tiles.crop, jpeg_quality
            )
        except Exception:  # noqa: BLE001 - the image may have changed since: the request renders what the record says
            return


def refuse(error: RequestError):
    response = Response(error.message + "\n", status=error.status, content_type="text/plain; charset=utf-8")
    response.headers["Cache-Control"] = "no-store" if error.status >= 500 else "public, max-age=60"
    return response


def allow_any_origin(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


for _blueprint in (image_service, image_service_v2):
    _blueprint.add_url_rule("/<path:image_id>", "base", base)
    _blueprint.add_url_rule("/<path:image_id>/info.json", "info", info)
    _blueprint.add_url_rule("/<path:image_id>/<region>/<size>/<rotation>/<quality>.<fmt>", "image", image)
    _blueprint.register_error_handler(RequestError, refuse)
    _blueprint.after_request(allow_any_origin)


def _settings() -> Settings:
    return current_app.config["SETTINGS"]


def _limits() -> Limits:
    settings = _settings()
    return Limits(settings.iiif_max_width, settings.iiif_max_height, settings.iiif_max_area)


def _check_id(image_id: str) -> None:
    if not is_valid_id(image_id):  # traversal-shaped, over-long or odd characters: nothing of ours has that name
        raise NotFound("no such image")


@dataclass(frozen=True)
class _Published:
    """What the image's conversion published that the endpoint can answer with, besides pixels."""

    paths: frozenset[str]  # the named derivatives (DERIVATIVES_FILE)
    versions: frozenset[int]  # Image API versions of the static tiles
    tile_size: int | None


@dataclass(frozen=True)
class _Found:
    tiles: TilePyramid
    made: _Published


_TILE_SHAPED = re.compile(r"\d+,\d+,\d+,\d+/\d+,\d*/0/default\.jpg")  # how viewers ask for a level-0 tile
_KNOWN: dict[tuple[str, str], _Found] = {}  # (metadata bucket, id) -> what its record said last; oldest first
_KNOWN_MAX = 1024
_KNOWN_LOCK = threading.Lock()
_RECORD_READS = ThreadPoolExecutor(8, thread_name_prefix="records")


def _locate(image_id: str, meanwhile: Callable[[_Found | None], None] | None = None) -> _Found:
    """The image's published version, from its job record (one GET): its size and tile size, where its tiles are,
    what else it published. NotFound when nothing of it is published.

    ``meanwhile`` runs while the GET is in flight, with what the record said when this process last read it
    (None if never), so that a request costs one round trip, not two: the endpoint fetches the published tile or
    the tiles to render from, and renders; what it made is used only if the record agrees."""
    _check_id(image_id)
    harden_libvips()
    settings = _settings()
    TILES.capacity = settings.iiif_block_cache_mb * 1024 * 1024
    storage = _storage(settings.upload_workers)
    known = _KNOWN.get((settings.metadata_bucket, image_id))
    try:
        if meanwhile is not None:
            reading = _RECORD_READS.submit(records.read_record, storage, settings.metadata_bucket, image_id)
            meanwhile(known)
            record = reading.result() or {}
        else:
            record = records.read_record(storage, settings.metadata_bucket, image_id) or {}
    except TilerError as error:
        raise Unavailable(f"storage unavailable: {error}") from None
    found = _found(record, image_id, settings, storage)
    if known is not None and known.tiles.version != found.tiles.version:
        TILES.forget(known.tiles.version)
    with _KNOWN_LOCK:
        _KNOWN.pop((settings.metadata_bucket, image_id), None)
        _KNOWN[(settings.metadata_bucket, image_id)] = found
        while len(_KNOWN) > _KNOWN_MAX:
            del _KNOWN[next(iter(_KNOWN))]
    return found


def _found(record: dict[str, Any], image_id: str, settings: Settings, storage: S3Storage) -> _Found:
    published = _published(record)
    if not published:
        raise NotFound("no such image")
    done = record.get("status") == "done"
    tile_size = published.get("tile_size") or record.get("tile_size") or settings.tile_size
    tiles_bucket = settings.tiles_bucket

    def read(key: str) -> bytes:
        return storage.read_bytes(tiles_bucket, key)

    tiles = TilePyramid(
        image_id, int(published["width"]), int(published["height"]), int(tile_size), str(published["etag"]), read
    )
    # A record that does not name its versions (written before IIIF_VERSIONS) had 3.0 tiles, unless this
    # deployment publishes no 3.0: then none is assumed. Static answers only once the record is final.
    assumed = [3] if 3 in settings.iiif_versions else []
    made = _Published(
        frozenset(d["path"] for d in record.get("named_derivatives", []) if done and "path" in d),
        frozenset(record.get("iiif_versions", assumed) if done else ()),
        record.get("tile_size") if done else None,
    )
    return _Found(tiles, made)


def _published(record: dict[str, Any]) -> dict[str, Any] | None:
    """The version whose tiles are public (a record written before ``published`` was kept: its facts, if done)."""
    if record.get("published"):
        return record["published"]
    facts = record.get("facts")
    if record.get("status") == "done" and facts:
        return {"etag": record.get("source", {}).get("etag"), "width": facts["width"], "height": facts["height"]}
    return None


@functools.cache
def _storage(workers: int) -> S3Storage:
    """One storage per process, on the shared boto3 client."""
    return S3Storage(workers)


def _named_derivative(made: _Published, image_id: str, wanted: Plan, pyramid: rendering.Pyramid) -> str | None:
    """The published path of the named derivative that is exactly this answer (at its 3.0 path, whichever version
    asked), if any: answered with a redirect, as it may be too big for a Lambda response."""
    named = f"{image_id}/{canonical_v3(wanted, pyramid.width, pyramid.height, _limits())}"
    return named if named in made.paths else None


def _tile_of(tiles: TilePyramid, wanted: Plan) -> grid.Tile | None:
    """The pyramid's tile that is exactly this answer (plain JPEG, a tile's region at its level's size), if any."""
    if (wanted.quality, wanted.format, wanted.rotation, wanted.mirror) != ("default", "jpg", 0, False):
        return None
    return grid.tile_of(wanted.region, wanted.size, tiles.width, tiles.height, tiles.tile_size)


def _tile_bytes(found: _Found, tile: grid.Tile, ahead: _Ahead, version: int) -> bytes:
    """``tile``'s bytes: fetched while the record was read (by its Deep Zoom name, or by the request's own path
    when that is its published level-0 name in this version), else read now; kept in the tile cache."""
    tiles = found.tiles
    data = ahead.tiles.get((tiles.version, tile.dz_path(tiles.image_id)))
    if data is None and version in found.made.versions and found.made.tile_size == tiles.tile_size:
        data = ahead.fetched.get(
            grid.image_path(tiles.image_id, tiles.width, tiles.height, tile.region, tile.size, version)
        )
        if data is not None:
            tiles.keep(tile, data)
    if data is not None:
        return data
    with _tile_reads():
        return tiles.encoded(tile)


class _Redirect(Response):
    """A redirect that keeps the endpoint's caching, so browsers and CDNs remember the hit."""

    default_mimetype = "text/plain"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers["Cache-Control"] = TILE_CACHE


def _exists(storage: S3Storage, key: str) -> bool:
    """Whether a large answer is already stored (one HEAD in the tiles bucket)."""
    try:
        storage.head(SourceRef(_settings().tiles_bucket, key))
    except SourceGone:
        return False
    except TilerError as error:
        raise Unavailable(f"storage unavailable: {error}") from None
    return True


def _put_cached(storage: S3Storage, key: str, body: bytes, media_type: str) -> None:
    try:
        storage.put_media(_settings().tiles_bucket, key, body, media_type, TILE_CACHE)
    except TilerError as error:
        raise Unavailable(f"storage unavailable: {error}") from None


def _redirect_to_cached(key: str, headers: dict[str, str]) -> Response:
    """To the stored answer (or the published tile), with the Link and caching the answer itself would have had."""
    response = redirect(f"{_settings().public_base_url.rstrip('/')}/{quote(key, safe='/,:!')}", 302, Response=_Redirect)
    response.headers.update(headers)
    return response


def _rendered(tiles: TilePyramid, wanted: Plan) -> bytes:
    with _tile_reads():
        return rendering.render(wanted, tiles.pyramid, tiles.crop, _settings().jpeg_quality)


@contextlib.contextmanager
def _tile_reads() -> Iterator[None]:
    """A tile that cannot be read is the HTTP error it deserves (gone: 404; storage failing: 503), not a storage
    or libvips one."""
    try:
        yield
    except SourceGone:
        raise NotFound("no such image (its tiles are gone)") from None
    except TilerError as error:
        raise Unavailable(f"storage unavailable: {error}") from None


def _etag(version: str, *inputs: Any) -> str:
    """A validator of everything the answer depends on: the published version and what turned it into this answer."""
    return hashlib.sha256(repr((version, *inputs)).encode()).hexdigest()[:32]
