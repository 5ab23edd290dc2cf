"""``python -m app convert``: local files into a tiles folder and a metadata folder.

Two images are in flight and one tiles at a time. libvips' tiling of an image
keeps about one core busy; its sizes, ``info.json``, manifest and metadata
(about a third of a page's time) are written on the other core while the next
image tiles. Conversions are published and reported in the order the files
were given, so a later file with the same id wins, as it would one by one.
A document (PDF, multi-page TIFF) is converted page by page, after the images
before it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from app.cli_progress import ConversionProgress
from app.errors import InputError, TilerError
from app.ids import image_id_for
from app.model import Conversion
from app.pipeline import convert
from app.storage.local import LocalStorage
from config import Settings

IN_FLIGHT = 2  # one tiling, one writing what follows the tiling


def convert_files(
    images: list[Path], storage: LocalStorage, settings: Settings, image_id: str | None, progress: ConversionProgress
) -> int:
    """Convert and publish ``images`` in order (``image_id`` names a single one); return how many failed, each
    reported as it comes."""
    tiling = threading.Lock()
    pending: deque[_Pending] = deque()
    failures = 0
    try:
        with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="convert") as pool:
            for src in images:
                ident = image_id or image_id_for(src.name)
                try:
                    document = _document(src, settings)
                except TilerError as error:
                    failures += _settle_all(pending, storage, progress)
                    progress.start(src.name)
                    failures += _refused(progress, src, error)
                    continue
                if document:
                    failures += _settle_all(pending, storage, progress)
                    failures += _convert_document(src, document, storage, settings, ident, progress)
                    continue
                if len(pending) == IN_FLIGHT:
                    failures += _settle(pending, storage, progress)
                stage = contextlib.ExitStack()
                folder = stage.enter_context(storage.staging())
                turn = _TilingTurn(tiling, progress, src.name)
                future = pool.submit(
                    convert, src, folder, settings, ident, on_progress=progress.on_progress, tiling_turn=turn
                )
                pending.append(_Pending(src, ident, turn, stage, future))
            failures += _settle_all(pending, storage, progress)
    finally:  # after the pool has let its running conversions finish (Ctrl-C too): their staging folders go last
        for item in pending:
            item.stage.close()
    return failures


@dataclass
class _Pending:
    src: Path
    image_id: str
    turn: _TilingTurn
    stage: contextlib.ExitStack  # the conversion's staging folder, removed once it is published or failed
    future: Future[Conversion]


class _TilingTurn:
    """One image's turn at tiling (``convert``'s ``tiling_turn``); the image shows as started when it gets it."""

    def __init__(self, lock: threading.Lock, progress: ConversionProgress, name: str) -> None:
        self._lock, self._progress, self._name = lock, progress, name
        self.started: float | None = None

    def __enter__(self) -> None:
        self._lock.acquire()
        self.started = time.perf_counter()
        self._progress.start(self._name)

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _settle_all(pending: deque[_Pending], storage: LocalStorage, progress: ConversionProgress) -> int:
    failures = 0
    while pending:
        failures += _settle(pending, storage, progress)
    return failures


def _settle(pending: deque[_Pending], storage: LocalStorage, progress: ConversionProgress) -> int:
    """Wait for the oldest conversion, publish it and report it; 1 if it failed. Interrupted while waiting, it
    stays pending, so its staging folder goes only once its conversion has stopped writing there."""
    item = pending[0]
    try:
        conversion = item.future.result()
    except TilerError as error:
        pending.popleft().stage.close()
        return _refused(progress, item.src, error)
    pending.popleft()
    with item.stage:
        storage.publish(conversion)
    facts = conversion.facts
    seconds = time.perf_counter() - (item.turn.started or time.perf_counter())
    progress.write(
        f"{item.src} -> {item.image_id}: {facts.width}x{facts.height} {facts.format}, "
        f"{len(conversion.tiles)} tiles in {seconds:.2f}s"
        + (f" (metadata partial: {conversion.metadata_partial})" if conversion.metadata_partial else "")
    )
    return 0


def _refused(progress: ConversionProgress, src: Path, error: TilerError) -> int:
    kind = "rejected" if isinstance(error, InputError) else "failed"
    progress.write(f"error: {src}: {kind}: {error}", err=True)
    return 1


def _document(src: Path, settings: Settings):
    """The document ``src`` holds (a PDF, a multi-page TIFF), or None for an image."""
    from app.pipeline.inspect import checked_format
    from app.pipeline.pages import inspect_document

    return inspect_document(src, checked_format(src, settings.allowed_formats), settings)


def _convert_document(
    src: Path, document, storage: LocalStorage, settings: Settings, item_id: str, progress: ConversionProgress
) -> int:
    """Each page as an image (ITEM/p0001 ...), then the item's manifest, written last and only if every page
    converted; 1 if it failed."""
    from app.ids import page_id
    from app.pipeline.manifest import document_manifest
    from app.pipeline.pages import split

    progress.start(src.name)
    started, pages = time.perf_counter(), []
    try:
        with storage.staging() as stage:
            for page, file in zip(document.pages, split(src, document, stage / "pages"), strict=True):
                conversion = convert(
                    file,
                    stage / f"page-{page.number}",
                    settings,
                    page_id(item_id, page.number),
                    on_progress=progress.on_progress,
                    source_name=f"{src.stem} p{page.number}",
                )
                storage.publish(conversion)
                pages.append((conversion.image_id, page.label, conversion.facts.width, conversion.facts.height))
            manifest = document_manifest(
                settings.public_base_url.rstrip("/"),
                item_id,
                document.title or src.stem,
                pages,
                settings.iiif_max_size,
                document.summary,
                document.creator,
            )
            staged = stage / "manifest.json"
            staged.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
            storage.publish_file(staged, f"{item_id}/manifest.json")
    except TilerError as error:
        return _refused(progress, src, error)
    progress.write(
        f"{src} -> {item_id}: {len(pages)} pages ({document.format}), each an image ({item_id}/p0001 ...), "
        f"and {item_id}/manifest.json in {time.perf_counter() - started:.2f}s"
    )
    return 0
