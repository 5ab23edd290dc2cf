"""The dynamic IIIF Image API 3.0 level 2 endpoint: any region, size, rotation, quality and format, on demand.

Rendered from the tiled pyramidal TIFF the pipeline writes to
``derivatives/ID.tif`` in the tiles bucket, read with ranged GETs (see
``app.storage.ranged``); the static level-0 tiles are untouched. Every
absolute URL is built by ``app.web.urls.external_url``: on DASHBOARD_BASE_URL
when set, so ``id`` and the canonical ``Link`` never come from the Host header. Errors are a short
text with their IIIF status (400, 403, 404, 501, 503), with CORS like every
other answer, so viewers on other sites can read them.

An answer too big for a Lambda response (``oversize.MAX_INLINE_BYTES``: a
full-size PNG or TIFF of a photo reaches it well within maxArea) is written
once to ``cache/iiif/3/ID/ETAG/...`` in the tiles bucket, ETAG being the
serving TIFF's, and answered with a redirect there; a request that could be
that big looks for the stored answer (one HEAD) before rendering.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, redirect, request

from app import outputs, records
from app.errors import SourceGone, TilerError
from app.ids import is_valid_id
from app.iiif import serving
from app.iiif.info import CONTEXT, LEVEL2_PROFILE, level2
from app.iiif.request import (
    Limits,
    NotFound,
    Plan,
    RequestError,
    Unavailable,
    parse,
    plan,
)
from app.model import SourceRef
from app.pipeline import render as rendering
from app.pipeline.inspect import harden_libvips
from app.storage.ranged import BLOCKS, RemoteTiff
from app.storage.s3 import DESCRIPTOR_CACHE, TILE_CACHE, S3Storage
from app.web import oversize
from app.web.urls import external_url
from config import Settings

JSON_LD = f'application/ld+json;profile="{CONTEXT}"'

image_service = Blueprint("image_service", __name__, url_prefix="/iiif/3")


def register(app: Flask) -> None:
    """Serve the endpoint from ``app`` (idempotent)."""
    if "image_service" not in app.blueprints:
        app.register_blueprint(image_service)


@image_service.get("/<path:image_id>")
def base(image_id: str):
    """The base URI redirects to the image information, as the specification asks."""
    _check_id(image_id)
    return redirect(external_url("image_service.info", image_id=image_id), code=303)


@image_service.get("/<path:image_id>/info.json")
def info(image_id: str):
    tiff = _locate(image_id)
    pyramid = _pyramid(tiff)
    service_id, limits = external_url("image_service.base", image_id=image_id), _limits()
    document = level2(service_id, pyramid.pages, limits)
    wants_ld = request.accept_mimetypes["application/ld+json"] > request.accept_mimetypes["application/json"]
    response = Response(
        json.dumps(document, indent=2), mimetype=None, content_type=JSON_LD if wants_ld else "application/json"
    )
    response.headers["Link"] = f'<{LEVEL2_PROFILE}>;rel="profile"'
    response.headers["Cache-Control"] = DESCRIPTOR_CACHE
    response.vary.add("Accept")
    response.set_etag(_etag(tiff.ref.etag, service_id, limits, wants_ld))
    return response.make_conditional(request)


@image_service.get("/<path:image_id>/<region>/<size>/<rotation>/<quality>.<fmt>")
def image(image_id: str, region: str, size: str, rotation: str, quality: str, fmt: str):
    _check_id(image_id)
    parsed = parse(region, size, rotation, quality, fmt)  # malformed requests never reach S3
    tiff = _locate(image_id)
    pyramid = _pyramid(tiff)
    wanted = plan(parsed, pyramid.width, pyramid.height, _limits())
    canonical = external_url("image_service.base", image_id=image_id) + "/" + quote(wanted.canonical, safe="/,:!")
    headers = {"Link": f'<{canonical}>;rel="canonical",<{LEVEL2_PROFILE}>;rel="profile"', "Cache-Control": TILE_CACHE}
    made = f"{image_id}/{wanted.canonical}"
    if made in _made_in_advance(tiff.storage, _settings().metadata_bucket, image_id, tiff.ref.etag):
        return redirect(f"{_settings().public_base_url.rstrip('/')}/{made}", 302, Response=_Redirect)
    etag = _etag(tiff.ref.etag, wanted.canonical, _settings().jpeg_quality)
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={**headers, "ETag": f'"{etag}"'})
    cached = outputs.stored_answer_key(image_id, tiff.ref.etag, wanted.canonical)
    if oversize.may_exceed(wanted) and _exists(tiff.storage, cached):
        return _redirect_to_cached(cached, headers)
    body = _rendered(tiff, wanted, pyramid)
    if len(body) > oversize.MAX_INLINE_BYTES:
        _put_cached(tiff.storage, cached, body, wanted.media_type)
        return _redirect_to_cached(cached, headers)
    response = Response(body, content_type=wanted.media_type, headers=headers)
    response.set_etag(etag)
    return response


@image_service.errorhandler(RequestError)
def refuse(error: RequestError):
    response = Response(error.message + "\n", status=error.status, content_type="text/plain; charset=utf-8")
    response.headers["Cache-Control"] = "no-store" if error.status >= 500 else "public, max-age=60"
    return response


@image_service.after_request
def allow_any_origin(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _settings() -> Settings:
    return current_app.config["SETTINGS"]


def _limits() -> Limits:
    settings = _settings()
    return Limits(settings.iiif_max_width, settings.iiif_max_height, settings.iiif_max_area)


def _check_id(image_id: str) -> None:
    if not is_valid_id(image_id):  # traversal-shaped, over-long or odd characters: nothing of ours has that name
        raise NotFound("no such image")


def _locate(image_id: str) -> RemoteTiff:
    _check_id(image_id)
    harden_libvips()
    BLOCKS.capacity = _settings().iiif_block_cache_mb * 1024 * 1024
    settings = current_app.config["SETTINGS"]
    return RemoteTiff.locate(_storage(settings.upload_workers), settings.tiles_bucket, serving.key(image_id))


@functools.cache
def _storage(workers: int) -> S3Storage:
    """One storage per process, on the shared boto3 client."""
    return S3Storage(workers)


@functools.lru_cache(maxsize=1024)
def _made_in_advance(storage: S3Storage, metadata_bucket: str, image_id: str, tiff_etag: str) -> frozenset[str]:
    """Paths of the image's named derivatives (DERIVATIVES_FILE), made at conversion: a request for one is a
    cache hit, answered by the static object. Read once per TIFF version."""
    record = records.read_record(storage, metadata_bucket, image_id) or {}
    return frozenset(d["path"] for d in record.get("named_derivatives", []) if "path" in d)


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
    """To the stored answer, with the Link and caching the answer itself would have had."""
    response = redirect(f"{_settings().public_base_url.rstrip('/')}/{quote(key, safe='/,:!')}", 302, Response=_Redirect)
    response.headers.update(headers)
    return response


def _pyramid(tiff: RemoteTiff) -> rendering.Pyramid:
    return _pyramid_of(tiff.storage, tiff.ref)


@functools.lru_cache(maxsize=1024)
def _pyramid_of(storage: S3Storage, ref: SourceRef) -> rendering.Pyramid:
    """Page sizes per TIFF version (ETag): read once per process, then every request skips the headers."""
    tiff = RemoteTiff(storage, ref)
    return _guarded(tiff, lambda: rendering.read_pyramid(tiff.open))


def _rendered(tiff: RemoteTiff, wanted: Plan, pyramid: rendering.Pyramid) -> bytes:
    return _guarded(tiff, lambda: rendering.render(wanted, pyramid, tiff.open, _settings().jpeg_quality))


def _guarded(tiff: RemoteTiff, work: Callable[[], Any]) -> Any:
    """Run libvips work on ``tiff``; an S3 failure mid-decode surfaces as a libvips error, so report the real cause."""
    try:
        return work()
    except RequestError:
        raise
    except Exception:
        tiff.raise_read_error()
        raise


def _etag(version: str, *inputs: Any) -> str:
    """A validator of everything the answer depends on: the TIFF's version and what turned it into this answer."""
    return hashlib.sha256(repr((version, *inputs)).encode()).hexdigest()[:32]
