"""``python -m app convert``: local files into a tiles folder and a metadata folder.

Two images are in flight and one tiles at a time. libvips' tiling of an image
keeps about one core busy; its sizes, ``info.json``, manifest and metadata
(about a third of a page's time) are written on the other core while the next
image tiles. A document's pages (PDF, multi-page TIFF) go through the same
two places, and its manifest is written once every page is in. Conversions
are published and reported in the order the files were given, so a later
file with the same id wins, as it would one by one.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
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
    failed: list[Path] = []

    def refused(src: Path, error: TilerError) -> None:
        failed.append(src)
        kind = "rejected" if isinstance(error, InputError) else "failed"
        progress.write(f"error: {src}: {kind}: {error}", err=True)

    with _InFlight(storage, settings, progress) as flight:
        for src in images:
            ident = image_id or image_id_for(src.name)
            try:
                document = _document(src, settings)
            except TilerError as error:
                flight.drain()  # its line comes after those of the files before it
                progress.start(src.name)
                refused(src, error)
                continue
            if document:
                flight.drain()
                _convert_document(src, document, flight, ident, refused)
                continue
            stage = flight.staging()
            flight.submit(
                src,
                stage.folder,
                ident,
                announce=src.name,
                stage=stage,
                on_done=lambda conversion, seconds, src=src: progress.write(_converted(src, conversion, seconds)),
                on_failed=lambda error, src=src: refused(src, error),
            )
        flight.drain()
    return len(failed)


class _InFlight:
    """Conversions in flight, one tiling at a time, published and heard of in the order they were submitted."""

    def __init__(self, storage: LocalStorage, settings: Settings, progress: ConversionProgress) -> None:
        self.storage, self.settings, self.progress = storage, settings, progress
        self._turns = _TilingTurns()
        self._pending: deque[_Pending] = deque()
        self._stages = contextlib.ExitStack()  # every staging folder, in case a run is interrupted
        self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="convert")

    def __enter__(self) -> _InFlight:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)  # a conversion still running (Ctrl-C) finishes writing first
        self._stages.close()

    def staging(self) -> _Stage:
        """A staging folder, removed when closed, or at the latest when this ends (after the conversions)."""
        stack = contextlib.ExitStack()
        folder = stack.enter_context(self.storage.staging())
        self._stages.callback(stack.close)
        return _Stage(folder, stack.close)

    def submit(
        self,
        src: Path,
        folder: Path,
        image_id: str,
        *,
        announce: str | None,
        on_done: Callable[[Conversion, float], None],
        on_failed: Callable[[TilerError], None],
        stage: _Stage | None = None,
        source_name: str | None = None,
    ) -> None:
        """Convert ``src`` into ``folder`` once a place is free, and close ``stage`` once it is published or
        failed; ``announce`` names it to the progress when its tiling starts. ``on_done`` gets the conversion
        and its seconds from then."""
        if len(self._pending) == IN_FLIGHT:
            self._settle_oldest()
        turn = self._turns.next(self.progress, announce)
        future = self._pool.submit(
            convert,
            src,
            folder,
            self.settings,
            image_id,
            on_progress=self.progress.on_progress,
            source_name=source_name,
            tiling_turn=turn,
        )
        future.add_done_callback(lambda _: turn.over())  # a conversion that ended before its turn gives it up
        self._pending.append(_Pending(future, turn, stage, on_done, on_failed))

    @property
    def busy(self) -> bool:
        """Whether conversions are still pending (after an interrupt)."""
        return bool(self._pending)

    def drain(self) -> None:
        while self._pending:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        """Wait for the oldest conversion, publish it, tell its caller. Interrupted while waiting, it stays
        pending, so its staging folder goes only once its conversion has stopped writing there."""
        item = self._pending[0]
        try:
            conversion = item.future.result()
        except TilerError as error:
            self._pending.popleft().close()
            item.on_failed(error)
            return
        self._pending.popleft()
        try:
            self.storage.publish(conversion)
        finally:
            item.close()
        item.on_done(conversion, time.perf_counter() - (item.turn.started or time.perf_counter()))


@dataclass
class _Stage:
    folder: Path
    close: Callable[[], None]


@dataclass
class _Pending:
    future: Future[Conversion]
    turn: _TilingTurn
    stage: _Stage | None  # a staging folder of its own, removed once it is published or failed
    on_done: Callable[[Conversion, float], None]
    on_failed: Callable[[TilerError], None]

    def close(self) -> None:
        if self.stage is not None:
            self.stage.close()


class _TilingTurns:
    """Turns at tiling, taken in the order they were given out: each conversion checks its file's header while
    the one before tiles, and waits for that one's turn to be over before its own."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._given = 0
        self._current = 0  # the turn that may tile now
        self._over: set[int] = set()

    def next(self, progress: ConversionProgress, name: str | None) -> _TilingTurn:
        self._given += 1
        return _TilingTurn(self, self._given - 1, progress, name)

    def wait_for(self, number: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._current == number)

    def end(self, number: int) -> None:
        """Turn ``number`` is over (or will never be taken); the next one not yet over may tile."""
        with self._changed:
            if number >= self._current:
                self._over.add(number)
            while self._current in self._over:
                self._over.remove(self._current)
                self._current += 1
            self._changed.notify_all()


class _TilingTurn:
    """One conversion's turn at tiling (``convert``'s ``tiling_turn``); a named one shows as started with it."""

    def __init__(self, turns: _TilingTurns, number: int, progress: ConversionProgress, name: str | None) -> None:
        self._turns, self._number, self._progress, self._name = turns, number, progress, name
        self.started: float | None = None

    def __enter__(self) -> None:
        self._turns.wait_for(self._number)
        self.started = time.perf_counter()
        if self._name is not None:
            self._progress.start(self._name)

    def __exit__(self, *exc: object) -> None:
        self.over()

    def over(self) -> None:
        """End this turn, whether it was taken or not (a conversion that failed before it); again is harmless."""
        self._turns.end(self._number)


def _converted(src: Path, conversion: Conversion, seconds: float) -> str:
    facts = conversion.facts
    return (
        f"{src} -> {conversion.image_id}: {facts.width}x{facts.height} {facts.format}, "
        f"{len(conversion.tiles)} tiles in {seconds:.2f}s"
        + (f" (metadata partial: {conversion.metadata_partial})" if conversion.metadata_partial else "")
    )


def _document(src: Path, settings: Settings):
    """The document ``src`` holds (a PDF, a multi-page TIFF), or None for an image."""
    from app.pipeline.inspect import checked_format
    from app.pipeline.pages import inspect_document

    return inspect_document(src, checked_format(src, settings.allowed_formats), settings)


def _convert_document(
    src: Path, document, flight: _InFlight, item_id: str, refused: Callable[[Path, TilerError], None]
) -> None:
    """Each page as an image (ITEM/p0001 ...), two in flight like files, then the item's manifest, written last
    and only if every page converted."""
    from app.ids import page_id
    from app.pipeline.manifest import document_manifest
    from app.pipeline.pages import split

    settings, progress = flight.settings, flight.progress
    progress.start(src.name)
    started, pages, errors = time.perf_counter(), {}, []
    stage = flight.staging()
    try:
        files = split(src, document, stage.folder / "pages")
        for page, file in zip(document.pages, files, strict=True):
            if errors:  # a page failed: the item is not published, so the pages after it need not convert
                break
            flight.submit(
                file,
                stage.folder / f"page-{page.number}",
                page_id(item_id, page.number),
                announce=None,
                source_name=f"{src.stem} p{page.number}",
                on_done=lambda c, _s, page=page: pages.__setitem__(
                    page.number, (c.image_id, page.label, c.facts.width, c.facts.height)
                ),
                on_failed=errors.append,
            )
        flight.drain()
        if errors:
            raise errors[0]
        manifest = document_manifest(
            settings.public_base_url.rstrip("/"),
            item_id,
            document.title or src.stem,
            [pages[number] for number in sorted(pages)],
            settings.iiif_max_size,
            document.summary,
            document.creator,
        )
        staged = stage.folder / "manifest.json"
        staged.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
        flight.storage.publish_file(staged, f"{item_id}/manifest.json")
    except TilerError as error:
        refused(src, error)
        return
    finally:
        if not flight.busy:  # else (an interrupt) it goes when the conversions have stopped
            stage.close()
    progress.write(
        f"{src} -> {item_id}: {len(pages)} pages ({document.format}), each an image ({item_id}/p0001 ...), "
        f"and {item_id}/manifest.json in {time.perf_counter() - started:.2f}s"
    )
