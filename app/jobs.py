"""One source version, end to end: claim -> route -> fetch -> convert -> publish -> record.

The Lambda event handler, the Batch container and the local demo all enter
here. Errors are classified once: the input's fault ends as a ``failed``
record and is not retried; anything else is recorded as ``retrying``, the
claim is released and the error re-raised so Lambda (or Batch) retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app import cdn, dispatch, items, records, refusals, takedown
from app.errors import ImageTooLarge, InputError, SourceGone, TransientError
from app.ids import image_id_for, key_problem, page_of
from app.iiif import grid
from app.model import ImageFacts, Route, SourceRef, Status
from app.pipeline import convert, jp2, read_header
from app.pipeline.inspect import checked_format
from app.pipeline.pages import Document, inspect_document
from app.records import Journal
from app.storage.publishing import Publisher
from app.storage.s3 import S3Storage
from config import Settings

log = logging.getLogger(__name__)

PUTS_PER_SECOND = 150  # conservative S3 publishing rate, for deadline estimates
DOWNLOAD_BYTES_PER_SECOND = 40e6
SAFETY_SECONDS = 20.0
FOLLOW_VERSIONS = 5  # newer versions one delivery converts in turn before it leaves the rest to their own events
SCRATCH_PREFIX = "tiler-"  # tiler-PID-random: the owning process is known, so only orphans are swept
_active_scratch: set[str] = set()  # this process's scratch folders in use (the demo runs jobs concurrently)


Listener = Callable[[dict[str, Any], Settings, str], None]  # a final record, the settings, the key delivered


class InProgressElsewhere(TransientError):
    """A delivery while another job works on the image: retried later, it finds the job done (or stale)."""


class ClaimLost(Exception):
    """This job stalled so long that another took the image over: it must publish nothing more."""


@dataclass(frozen=True)
class Runtime:
    """Where a job runs: Lambda (a deadline, may hand off to Batch) or the Batch container (neither)."""

    owner: str
    remaining_seconds: Callable[[], float] | None = None
    may_dispatch: bool = True
    memory_mb: int = 0  # what the job is billed for: Lambda's memory size, or the Batch container's
    vcpus: float = 0.0

    @property
    def route(self) -> str:
        """What the job record says of where it ran."""
        return Route.LAMBDA if self.may_dispatch else Route.BATCH

    def usage(self, seconds: float) -> dict[str, Any]:
        """Billable compute for ``seconds`` of this runtime (Lambda: GB-seconds; Batch: vCPU- and GB-seconds)."""
        gigabytes = self.memory_mb / 1024
        usage = {
            "kind": self.route,
            "seconds": round(seconds, 3),
            "memory_gb": round(gigabytes, 3),
            "gb_seconds": round(gigabytes * seconds, 3),
        }
        if self.vcpus:
            usage.update(vcpus=self.vcpus, vcpu_seconds=round(self.vcpus * seconds, 3))
        return usage


def handle(
    ref: SourceRef,
    settings: Settings,
    runtime: Runtime,
    listeners: Sequence[Listener] = (),
    run: str | None = None,
) -> dict[str, Any] | None:
    """Convert and publish the newest version of ``ref.key``; returns the last job record, or None if another
    delivery has it.

    Jobs of one image never overlap (``records.claim``). When a job ends, its source is looked at again: a
    version uploaded meanwhile, whose own delivery found the image busy, is converted next by this job, and a
    source deleted meanwhile is withdrawn, so the newest version always wins. ``listeners`` hear of every
    final record, also on a duplicate delivery: what sits on top of the engine (collections, documents' items)
    subscribes through them, as the entry points choose. ``run`` names a re-processing run.
    """
    store = S3Storage(settings.upload_workers)
    owner = f"{runtime.owner}/{uuid.uuid4().hex[:8]}"  # this delivery's, also among threads of one process
    record = None
    for _ in range(FOLLOW_VERSIONS):
        outcome = _one_version(store, ref, settings, runtime, listeners, run, owner)
        if outcome is None:
            return record
        record = outcome
        if record["status"] not in Status.FINAL or record["status"] == Status.WITHDRAWN or record.get("conflict"):
            return record  # handed to AWS Batch, or split into pages: those jobs look again when they end
        try:
            newest = store.head(SourceRef(ref.bucket, ref.key))
        except SourceGone:  # deleted while it converted: withdrawn now, whatever order the events come in
            return source_removed(ref, settings, runtime, listeners, owner) or record
        if newest.etag == record["source"].get("etag"):
            return record
        log.info("s3://%s/%s changed while it converted: converting its newest version", ref.bucket, ref.key)
        ref = newest
    return record


def _one_version(
    store: S3Storage,
    ref: SourceRef,
    settings: Settings,
    runtime: Runtime,
    listeners: Sequence[Listener],
    run: str | None,
    owner: str,
) -> dict[str, Any] | None:
    image_id = image_id_for(ref.key)
    try:
        current = store.head(ref)
    except SourceGone as gone:
        if page_of(ref.key):  # a page of a document's earlier version, deleted when the new one was split
            log.info("skipped s3://%s/%s: superseded by a newer version of its document", ref.bucket, ref.key)
            return None
        return source_removed(ref, settings, runtime, listeners, owner) or _finished(
            _record_gone(store, settings, image_id, ref, runtime, owner, str(gone)), settings, listeners
        )
    if ref.etag and current.etag != ref.etag:
        log.warning(
            "skipped stale event for s3://%s/%s: ETag %s is now %s", ref.bucket, ref.key, ref.etag, current.etag
        )
        return None
    problem = key_problem(ref.key)
    if problem:
        reason = f"{ref.key!r} cannot be published: {problem}; rename it"
        refused = refusals.refuse(store, settings, current, runtime.route, runtime.owner, reason)
        return _finished(refused, settings, listeners)
    claimed = records.claim(
        store,
        settings.metadata_bucket,
        image_id,
        current,
        owner,
        settings.stale_after_seconds,
        resume_batch=not runtime.may_dispatch,
        run=run,
    )
    if claimed == records.Claim.BUSY:  # fail, so it is delivered again: by then it is done, or its worker died
        raise InProgressElsewhere(f"s3://{ref.bucket}/{ref.key} ({current.etag}): {image_id} is being converted")
    if claimed == records.Claim.HANDLED:
        log.info("s3://%s/%s (%s) is already handled: duplicate delivery ignored", ref.bucket, ref.key, current.etag)
        _finished(records.read_record(store, settings.metadata_bucket, image_id), settings, listeners, current)
        return None
    previous = records.read_record(store, settings.metadata_bucket, image_id)
    holder = refusals.holder_of(store, previous, current)
    if holder:
        records.release(store, settings.metadata_bucket, image_id, owner)
        reason = (
            f"{ref.key} would be published as {image_id!r}, the id of {holder}: rename one of them, or delete "
            f"{holder} (which withdraws it) and retry this one"
        )
        refused = refusals.refuse(store, settings, current, runtime.route, runtime.owner, reason, conflict=holder)
        return _finished(refused, settings, listeners)
    journal = Journal(
        store,
        settings.metadata_bucket,
        image_id,
        current,
        runtime.route,
        owner,
        indexed_as=previous and previous.get("status"),
        replaces=_published_version(previous),
        published=_published(previous),
        run=run,
    )
    try:
        record = _run(journal, store, current, image_id, settings, runtime, previous, owner)
    except InputError as error:
        record = journal.save(status=Status.FAILED, error=str(error))
    except SourceGone as error:
        record = journal.save(status=Status.GONE, error=str(error))
    except dispatch.BatchNotConfigured as error:
        record = journal.save(status=Status.FAILED, error=f"too large for Lambda, and {error}")
    except ClaimLost as lost:
        log.warning("%s: %s; the job that took it over publishes instead", image_id, lost)
        return None
    except Exception as error:
        _give_back(journal, store, settings, image_id, owner, error)
        raise
    return _finished(record, settings, listeners)


def _finished(
    record: dict[str, Any] | None, settings: Settings, listeners: Sequence[Listener], delivered: SourceRef | None = None
) -> dict[str, Any] | None:
    """Tell the listeners a record is final, also on a duplicate delivery: a collection may have sent the image
    again after its first job ended, and a new version of a document may hold a page identical to one already
    converted, under its new key."""
    etag = delivered.etag if delivered else None
    if record and record["status"] in Status.FINAL and (etag is None or record["source"].get("etag") == etag):
        for listener in listeners:
            listener(record, settings, delivered.key if delivered else record["source"]["key"])
    return record


def _run(
    journal: Journal,
    store: S3Storage,
    ref: SourceRef,
    image_id: str,
    settings: Settings,
    runtime: Runtime,
    previous: dict[str, Any] | None,
    owner: str,
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if runtime.may_dispatch and ref.size > settings.lambda_max_bytes:
        return _hand_to_batch(journal, ref, image_id, settings, f"{ref.size:,} bytes is over LAMBDA_MAX_BYTES")
    with _scratch(settings.work_dir) as work:
        journal.phase("fetch", 0, ref.size)
        fetched = _ByteCount(journal.progress, ref.size)
        source = store.fetch(ref, work / "source", on_bytes=fetched.add)
        timings["fetch"] = _lap(started, timings)
        fmt = checked_format(source, settings.allowed_formats)
        document = None if page_of(ref.key) else inspect_document(source, fmt, settings)  # a page is an image
        if document:
            reason = _why_not_split_here(document, settings, runtime)
            if reason:
                return _hand_to_batch(journal, ref, image_id, settings, reason)
            return items.start(journal, store, ref, source, document, image_id, settings, work, previous)
        _, facts = read_header(source, settings)
        _check_decodable(facts, settings)
        reason = _why_not_here(facts, ref, settings, runtime)
        if reason:
            return _hand_to_batch(journal, ref, image_id, settings, reason)
        journal.phase("convert", 0, 100)
        publisher = Publisher(store, settings.tiles_bucket, settings.metadata_bucket)
        replacing = _published(previous) is not None or bool(previous and previous.get("kind") == "item")
        with publisher.early_tiles() as early:  # tiles go up while libvips makes the rest
            conversion = convert(
                source,
                work / "out",
                settings,
                image_id,
                source_name=_source_name(ref.key),
                on_progress=lambda percent: journal.progress(int(percent), 100),
                on_tile=None if replacing else early.add,  # a failing new version must not touch the old one's
            )
            timings.update(conversion.timings)
            objects = conversion.object_count
            if _seconds_left(runtime) < objects / PUTS_PER_SECOND + SAFETY_SECONDS and runtime.may_dispatch:
                early.discard()
                return _hand_to_batch(journal, ref, image_id, settings, "not enough Lambda time left to publish")
            try:
                _check_still_ours(store, settings, image_id, ref, owner)
            except ClaimLost:
                early.take()  # not ours to delete: the keys may hold the new owner's tiles by now
                raise
            journal.phase("publish", 0, objects)
            publish_started = time.perf_counter()
            stored = publisher.publish(conversion, on_progress=journal.progress, early=early)
        if previous:  # an image never recorded has nothing published; any earlier attempt left its record first
            keep = {key for phase in conversion.phases() if phase.destination == "tiles" for _, key in phase.files}
            takedown.prune(store, settings.tiles_bucket, image_id, keep)
        if previous and previous.get("kind") == "item":  # a document replaced by a single image
            for page in previous.get("pages") or ():
                takedown.retire(store, settings, page["id"])
            store.delete_keys(settings.source_bucket, takedown.page_sources(store, settings.source_bucket, image_id))
        refusals.forget(store, settings, ref.key)
        _invalidate_replaced(settings, image_id, ref.etag, previous)
        timings["publish"] = round(time.perf_counter() - publish_started, 3)
    timings["total"] = round(time.perf_counter() - started, 3)
    facts = conversion.facts
    thumbnail = _thumbnail(facts, settings)
    return journal.save(
        status=Status.DONE,
        published={
            "etag": ref.etag,
            "key": ref.key,
            "at": records.now_iso(),
            "width": facts.width,
            "height": facts.height,
            "tile_size": settings.tile_size,
            "thumbnail": thumbnail,
        },
        error=None,
        timings=timings,
        facts=facts.to_dict(),
        tile_size=settings.tile_size,
        objects=objects,
        metadata_partial=conversion.metadata_partial,
        thumbnail=thumbnail,
        manifest=settings.iiif_manifests,
        iiif_versions=list(conversion.iiif_versions),
        presentation_versions=list(conversion.presentation_versions),
        progress={"phase": "done", "done": objects, "total": objects},
        derivatives=list(conversion.derivatives),
        palette=list(conversion.palette),
        named_derivatives=[
            {**d, "uri": f"{settings.public_base_url.rstrip('/')}/{d['path']}"} if "path" in d else d
            for d in conversion.named_derivatives
        ],
        cost={
            "compute": runtime.usage(timings["total"]),
            "s3": {**{f"{tier}_requests": n for tier, n in store.requests.items()}, "bytes_stored": stored},
        },
    )


def _thumbnail(facts: ImageFacts, settings: Settings) -> str:
    """The IIIF path, under the image's id, of the thumbnail the manifest names too."""
    width, height = grid.thumbnail_size(facts.width, facts.height, settings.iiif_max_size)
    return f"full/{width},{height}/0/default.jpg"


def _source_name(key: str) -> str:
    """The name people know a source by: its file name, or for a document's page "NAME p7"."""
    page = page_of(key)
    return f"{PurePosixPath(page[0]).name} p{page[1]}" if page else PurePosixPath(key).name


def _check_decodable(facts: ImageFacts, settings: Settings) -> None:
    """A JPEG 2000 decode is held in memory whole: refuse one that even AWS Batch could not hold."""
    if facts.format != "jp2k":
        return
    needed = facts.pixels / 1e6 * jp2.DECODE_MB_PER_MEGAPIXEL
    if needed > settings.batch_memory_mb:
        raise ImageTooLarge(
            f"decoding this {facts.width}x{facts.height} JPEG 2000 needs about {needed:,.0f} MB, "
            f"more than the {settings.batch_memory_mb:,} MB of an AWS Batch job (BATCH_MEMORY_MB)"
        )


def _why_not_split_here(document: Document, settings: Settings, runtime: Runtime) -> str | None:
    """Splitting a TIFF decodes and re-encodes every page (a PDF is only copied page by page): Batch if too slow."""
    if not runtime.may_dispatch or document.format == "pdf":
        return None
    pixels = sum(page.width * page.height for page in document.pages)
    needed = pixels / 1e6 / settings.lambda_megapixels_per_second + SAFETY_SECONDS
    if _seconds_left(runtime) < needed:
        return f"splitting {len(document.pages)} pages needs about {needed:.0f}s, more than Lambda has left"
    return None


def _why_not_here(facts: ImageFacts, ref: SourceRef, settings: Settings, runtime: Runtime) -> str | None:
    """Why this job should go to Batch instead (None: convert here)."""
    if not runtime.may_dispatch:
        return None
    if facts.pixels > settings.lambda_max_pixels:
        return f"{facts.width}x{facts.height} is over LAMBDA_MAX_PIXELS ({settings.lambda_max_pixels:,})"
    if facts.format == "jp2k" and facts.pixels > settings.lambda_max_jp2_pixels:
        return (
            f"decoding a {facts.width}x{facts.height} JPEG 2000 needs more memory than LAMBDA_MAX_JP2_PIXELS "
            f"({settings.lambda_max_jp2_pixels:,}) allows"
        )
    needed = _seconds_needed(facts, ref, settings)
    if _seconds_left(runtime) < needed:
        return f"needs about {needed:.0f}s, more than the {_seconds_left(runtime):.0f}s Lambda has left"
    return None


def _seconds_needed(facts: ImageFacts, ref: SourceRef, settings: Settings) -> float:
    tiles = 2.7 * facts.pixels / settings.tile_size**2  # Deep Zoom + IIIF names, every level
    decode = facts.pixels / 1e6 / jp2.DECODE_MEGAPIXELS_PER_SECOND if facts.format == "jp2k" else 0
    return (
        decode
        + facts.pixels / 1e6 / settings.lambda_megapixels_per_second
        + tiles / PUTS_PER_SECOND
        + (ref.size or 0) / DOWNLOAD_BYTES_PER_SECOND
        + SAFETY_SECONDS
    )


def _seconds_left(runtime: Runtime) -> float:
    return runtime.remaining_seconds() if runtime.remaining_seconds else float("inf")


def _hand_to_batch(journal: Journal, ref: SourceRef, image_id: str, settings: Settings, reason: str) -> dict[str, Any]:
    job_id = dispatch.submit(ref, image_id, settings.batch_job_queue, settings.batch_job_definition)
    log.info("s3://%s/%s handed to AWS Batch (%s): job %s", ref.bucket, ref.key, reason, job_id)
    return journal.save(
        status=Status.QUEUED,
        route=Route.BATCH,
        batch_job_id=job_id,
        routed_because=reason,
        progress={"phase": "queued", "done": 0, "total": 0},
    )


def source_removed(
    ref: SourceRef, settings: Settings, runtime: Runtime, listeners: Sequence[Listener] = (), owner: str = ""
) -> dict[str, Any] | None:
    """ObjectRemoved: withdraw the image this key published; returns its record (None: nothing to withdraw).

    Deliveries come in any order: a key uploaded again since is left to its ObjectCreated, and an image whose
    record names another key (an earlier version's page, the key that holds a shared id) is not this key's.
    """
    if page_of(ref.key):  # the service's own page sources: their item retires or withdraws the pages
        return None
    store = S3Storage(settings.upload_workers)
    if store.exists(ref.bucket, ref.key):
        log.info("s3://%s/%s was deleted and uploaded again: its new version stays", ref.bucket, ref.key)
        return None
    image_id = image_id_for(ref.key)
    record = records.read_record(store, settings.metadata_bucket, image_id)
    if record is None or record["source"].get("key") != ref.key or record["status"] == Status.GONE:
        return None
    reason = f"its source s3://{ref.bucket}/{ref.key} was deleted"
    return takedown.withdraw(settings, image_id, "source deleted", reason, owner or runtime.owner, listeners)


def _record_gone(
    store: S3Storage, settings: Settings, image_id: str, ref: SourceRef, runtime: Runtime, owner: str, reason: str
) -> dict[str, Any] | None:
    """The source was deleted before anything of it was published: say so, holding the image's claim as any job
    writing its record does, and only if the key is still empty then. Another job on the image looks at its source
    again when it ends; a version uploaded since converts through its own event, and its record is never
    overwritten by this one."""
    log.warning("%s", reason)
    bucket = settings.metadata_bucket
    claimed = records.claim(store, bucket, image_id, ref, owner, settings.stale_after_seconds)
    if claimed == records.Claim.HANDLED:
        return records.read_record(store, bucket, image_id)
    if claimed == records.Claim.BUSY:
        return None
    if store.exists(ref.bucket, ref.key):
        records.release(store, bucket, image_id, owner)
        return None
    previous = records.read_record(store, bucket, image_id)
    journal = Journal(
        store, bucket, image_id, ref, runtime.route, owner, indexed_as=previous and previous.get("status")
    )
    return journal.save(status=Status.GONE, error=reason, progress={"phase": "gone", "done": 0, "total": 0})


def _give_back(
    journal: Journal, store: S3Storage, settings: Settings, image_id: str, owner: str, error: Exception
) -> None:
    """Record a transient failure and release the claim, so the retry can take the job again."""
    try:
        journal.save(status=Status.RETRYING, error=f"{type(error).__name__}: {error}")
        records.release(store, settings.metadata_bucket, image_id, owner)
    except Exception:  # S3 itself is failing: the stale claim will be taken over by the retry
        log.exception("could not record the failure of %s", image_id)


def _check_still_ours(store: S3Storage, settings: Settings, image_id: str, ref: SourceRef, owner: str) -> None:
    """Right before publishing: the claim is still this job's (it was not taken over as dead while it
    stalled). A version uploaded meanwhile is published afterwards by this same job (``handle``), so this
    complete version goes up whole first, and the newest follows it."""
    if not records.holds(store, settings.metadata_bucket, image_id, owner):
        raise ClaimLost(f"the claim on {image_id} passed to another job")


def _published(previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """What of the image is published now, as the previous record knows it (carried across failed versions)."""
    if not previous:
        return None
    if "published" in previous:
        return previous["published"]
    if previous.get("status") == Status.DONE and previous.get("facts"):  # a record from before it was kept
        facts = previous["facts"]
        return {
            "etag": previous["source"].get("etag"),
            "key": previous["source"].get("key"),
            "at": previous.get("finished_at"),
            "width": facts["width"],
            "height": facts["height"],
            "thumbnail": previous.get("thumbnail"),
        }
    return None


def _published_version(previous: dict[str, Any] | None) -> str | None:
    """The source ETag of the version whose outputs are published now (None: nothing is)."""
    return (_published(previous) or {}).get("etag")


def _invalidate_replaced(settings: Settings, image_id: str, etag: str, previous: dict[str, Any] | None) -> None:
    """A replaced image's old tiles and descriptors may be cached at the CDN: drop them. Best effort: the new
    version is published either way, and its descriptors would expire within minutes."""
    if not settings.cdn_distribution_id or not _published_version(previous):
        return
    try:
        invalidation = cdn.invalidate(settings.cdn_distribution_id, image_id, etag)
    except (BotoCoreError, ClientError) as error:
        log.warning(
            "could not invalidate the replaced %s in CloudFront (%s); its tiles may be served stale for a "
            "day: aws cloudfront create-invalidation --distribution-id %s --paths %s",
            image_id,
            error,
            settings.cdn_distribution_id,
            " ".join(cdn.paths(image_id)),
        )
        return
    log.info(
        "invalidated the replaced %s in CloudFront distribution %s: %s",
        image_id,
        settings.cdn_distribution_id,
        invalidation,
    )


@contextlib.contextmanager
def _scratch(work_dir: str) -> Iterator[Path]:
    """A scratch folder for one job, removed on every way out; orphans of killed jobs are swept first."""
    _sweep_scratch(Path(work_dir))
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=work_dir) as folder:
        _active_scratch.add(folder)
        try:
            yield Path(folder)
        finally:
            _active_scratch.discard(folder)


def _sweep_scratch(work_dir: Path) -> None:
    """Remove scratch folders a killed job left behind (Lambda reuses /tmp across invocations and restarts).

    A folder is an orphan when the process named in it is gone, or is this one but no job here uses it
    (a restarted runtime can get its old process id back). Other live processes' folders are left alone.
    """
    for folder in work_dir.glob(f"{SCRATCH_PREFIX}*"):
        owner = folder.name.split("-")[1]
        if str(folder) in _active_scratch or not owner.isdigit():
            continue
        if int(owner) == os.getpid() or not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _lap(started: float, timings: dict[str, float]) -> float:
    return round(time.perf_counter() - started - sum(timings.values()), 3)


class _ByteCount:
    def __init__(self, report: Callable[[int, int], None], total: int) -> None:
        self.report, self.total, self.done = report, total, 0

    def add(self, count: int) -> None:
        self.done += count
        self.report(self.done, self.total)
