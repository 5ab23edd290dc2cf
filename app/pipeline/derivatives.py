"""Named derivative sets, as go-iiif's iiif-process "instructions", made at conversion time.

A deployment's JSON file names IIIF parameter sets::

    {"b": {"size": "!2048,1536", "format": "jpg"},
     "s": {"region": "square", "size": "320,320"}}

Each is parsed and rendered by the dynamic endpoint's own code (app/iiif/request.py, app/pipeline/render.py)
from the conversion's own staged Deep Zoom tiles (read as the endpoint reads the published ones,
``app.storage.tile_pyramid``), and written at its canonical IIIF path under the image's
id, so the same request to the dynamic endpoint finds it already made.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from app.iiif.request import ImageRequest, Limits, RequestError, parse, plan
from app.pipeline import render as rendering
from app.storage.tile_pyramid import TileCache, TilePyramid

DEFAULTS = {"region": "full", "size": "max", "rotation": "0", "quality": "default", "format": "jpg"}


def load(path: str) -> dict[str, ImageRequest]:
    """The instructions in ``path`` (empty for no path); a clear ValueError for a bad file."""
    if not path:
        return {}
    file = Path(path)
    return _load(str(file.resolve()), file.stat().st_mtime if file.exists() else 0.0)


@functools.cache
def _load(path: str, _mtime: float) -> dict[str, ImageRequest]:
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"DERIVATIVES_FILE {path}: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"DERIVATIVES_FILE {path}: expected an object of named parameter sets")
    instructions = {}
    for name, fields in document.items():
        unknown = set(fields) - set(DEFAULTS) if isinstance(fields, dict) else {"(not an object)"}
        if unknown:
            raise ValueError(f"DERIVATIVES_FILE {path}: {name!r} has unknown fields {sorted(unknown)}")
        values = {**DEFAULTS, **{k: str(v) for k, v in fields.items()}}
        try:
            instructions[name] = parse(
                values["region"], values["size"], values["rotation"], values["quality"], values["format"]
            )
        except RequestError as error:
            raise ValueError(f"DERIVATIVES_FILE {path}: {name!r}: {error.message}") from None
    return instructions


def render_all(
    image_id: str,
    width: int,
    height: int,
    tile_size: int,
    instructions: dict[str, ImageRequest],
    limits: Limits,
    quality: int,
    tiles_root: Path,
    taken: set[str],
) -> list[dict[str, Any]]:
    """Render every instruction from the Deep Zoom tiles staged in ``tiles_root``; returns what was made (or why
    not) per name.

    ``taken`` holds paths the conversion already publishes (a size equal to a declared size is one of them).
    """
    tiles = TilePyramid(
        image_id,
        width,
        height,
        tile_size,
        str(tiles_root),
        lambda key: (tiles_root / key).read_bytes(),
        cache=TileCache(16 * 1024 * 1024),  # this conversion's own: the endpoint's cache holds published tiles
    )
    pyramid = tiles.pyramid
    made = []
    for name, request in instructions.items():
        try:
            wanted = plan(request, pyramid.width, pyramid.height, limits)
        except RequestError as error:  # e.g. "!2048,1536" on a smaller image: nothing to make, not a failure
            made.append({"name": name, "skipped": error.message})
            continue
        path = f"{image_id}/{wanted.canonical}"
        if path not in taken:
            target = tiles_root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(rendering.render(wanted, pyramid, tiles.crop, quality))
        made.append(
            {"name": name, "path": path, "width": wanted.size[0], "height": wanted.size[1], "new": path not in taken}
        )
    return made
