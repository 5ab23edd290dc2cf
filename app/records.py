"""Job records and claims in the metadata bucket: the only state the system keeps.

``jobs/ID.json`` is the job record the dashboard reads: source version,
route, status, progress, timings, error, and which version is published.
``claims/ID.json`` says which job holds the image: one job per image at a time,
whatever the version, so two versions of one key can never publish over each
other. It is created with an S3 conditional write (If-None-Match) and handed
on with another (If-Match): to the next version once the holder's job has
ended, or to a retry once the holder has stopped moving (its worker died).
Duplicate deliveries of a version already handled are told so, and do nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from app.model import Route, SourceRef, Status
from app.storage.s3 import PreconditionFailed, S3Storage

log = logging.getLogger(__name__)

RECORDS_PREFIX = "jobs/"
CLAIMS_PREFIX = "claims/"
INDEX_PREFIX = "index/"  # index/STATUS/ID: lets the dashboard list one status page by page


def record_key(image_id: str) -> str:
    return f"{RECORDS_PREFIX}{image_id}.json"


def index_key(status: str, image_id: str) -> str:
    return f"{INDEX_PREFIX}{status}/{image_id}"


def move_index(store: S3Storage, bucket: str, image_id: str, old: str | None, new: str) -> None:
    """List ``image_id`` under its new status (and no longer under its old one)."""
    if old == new:
        return
    store.put_json(bucket, index_key(new, image_id), {})
    if old:
        store.delete(bucket, index_key(old, image_id))


def claim_key(image_id: str) -> str:
    return f"{CLAIMS_PREFIX}{image_id}.json"


def now() -> datetime:
    """The clock every stamp and age is read from, in one place so a test can age a job without waiting."""
    return datetime.now(UTC)


def now_iso() -> str:
    return now().isoformat(timespec="milliseconds")


def age_seconds(stamp: str | None) -> float:
    if not stamp:
        return float("inf")
    return (now() - datetime.fromisoformat(stamp)).total_seconds()


def read_record(store: S3Storage, bucket: str, image_id: str) -> dict[str, Any] | None:
    found = store.get_json(bucket, record_key(image_id))
    return found[0] if found else None


class Claim:
    """What ``claim`` found: the image is now ours, this version is already handled, or another job is on it."""

    OURS = "ours"
    HANDLED = "handled"  # final for this version (in this run), or handed to AWS Batch, which owns it now
    BUSY = "busy"  # another job is on the image and alive: a retry later finds it done, or stale


def claim(
    store: S3Storage,
    bucket: str,
    image_id: str,
    ref: SourceRef,
    owner: str,
    stale_after: float,
    resume_batch: bool = False,
    run: str | None = None,
    takedown: bool = False,
) -> str:
    """Try to take the image on for the source version ``ref``, with S3 conditional writes; a ``Claim`` value.

    ``run`` names a re-processing run: a version already handled is converted again, once per run.
    ``takedown`` takes the image from any job that has ended, to withdraw what it published.
    """
    key = claim_key(image_id)
    mine = {"etag": ref.etag, "owner": owner, "at": now_iso(), "run": run, "takedown": takedown}
    try:
        store.put_json(bucket, key, mine, create_only=True)
        return Claim.OURS
    except PreconditionFailed:
        pass
    held = store.get_json(bucket, key)
    if held is None:  # released between our two calls: try once more from the start
        return claim(store, bucket, image_id, ref, owner, stale_after, resume_batch, run, takedown)
    holder, claim_etag = held
    record = read_record(store, bucket, image_id)
    verdict = _verdict(record, holder, ref, stale_after, resume_batch, run, takedown)
    if verdict != Claim.OURS:
        return verdict
    try:
        store.put_json(bucket, key, {**mine, "took_over_from": holder.get("owner")}, if_match=claim_etag)
    except PreconditionFailed:
        return Claim.BUSY  # another delivery took it first
    if not holder.get("released") and not _ended(record, holder):
        log.warning("took over %s from %s", key, holder.get("owner"))
    return Claim.OURS


def _ended(record: dict | None, holder: dict) -> bool:
    """Whether the holder's job has ended (its record, for its version, says so)."""
    if record is None or record.get("source", {}).get("etag") != holder.get("etag"):
        return False
    return record["status"] in Status.FINAL or record["status"] == Status.PAGES  # the pages own the job then


def _verdict(
    record: dict | None,
    holder: dict,
    ref: SourceRef,
    stale_after: float,
    resume_batch: bool,
    run: str | None,
    takedown: bool,
) -> str:
    """Whether a held claim may be taken (OURS), or why not."""
    if holder.get("released"):
        return Claim.OURS
    same_version = holder.get("etag") == ref.etag
    if _ended(record, holder):
        if takedown or not same_version:
            return Claim.OURS  # the next version, or a takedown, after a job that has ended
        handled = record["status"] == Status.WITHDRAWN or run is None or record.get("run") == run
        return Claim.HANDLED if handled else Claim.OURS
    if record is None or record.get("source", {}).get("etag") != holder.get("etag"):  # claimed, not yet recorded
        return Claim.OURS if age_seconds(holder.get("at")) > stale_after else Claim.BUSY
    if record["status"] == Status.QUEUED and record.get("route") == Route.BATCH:
        if not same_version:
            return Claim.OURS  # a newer version: the Batch job will find its source changed and stop
        return Claim.OURS if resume_batch else Claim.HANDLED  # never a second Batch job from a late delivery
    return Claim.OURS if age_seconds(record.get("updated_at")) > stale_after else Claim.BUSY


def holds(store: S3Storage, bucket: str, image_id: str, owner: str) -> bool:
    """Whether ``owner`` still holds the image's claim (a job presumed dead may have been taken over)."""
    held = store.get_json(bucket, claim_key(image_id))
    return bool(held) and held[0].get("owner") == owner and not held[0].get("released")


def release(store: S3Storage, bucket: str, image_id: str, owner: str) -> None:
    """Give the claim back (if still ours) so the retry of a transient failure can take the job at once."""
    held = store.get_json(bucket, claim_key(image_id))
    if not held or held[0].get("owner") != owner:
        return
    try:
        store.put_json(bucket, claim_key(image_id), {**held[0], "released": True}, if_match=held[1])
    except PreconditionFailed:
        pass  # taken over meanwhile: it is not ours to give


class Journal:
    """Writes one job's record as it moves. Only the claim holder has a Journal.

    Progress (phases, heartbeats) is written in the background: a job never waits
    a round trip for it. ``save`` writes at once, after whatever is still on its
    way, so the record's writes land in order and the last one says how it ended.
    """

    HEARTBEAT_SECONDS = 5.0

    def __init__(
        self,
        store: S3Storage,
        bucket: str,
        image_id: str,
        ref: SourceRef,
        route: str,
        owner: str,
        indexed_as: str | None = None,
        replaces: str | None = None,
        published: dict[str, Any] | None = None,
        run: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.bucket, self._clock = store, bucket, clock  # monotonic seconds: spaces the heartbeats
        self.record: dict[str, Any] = {
            "id": image_id,
            "source": ref.to_dict(),
            "route": route,
            "status": Status.RUNNING,
            "progress": {"phase": "claimed", "done": 0, "total": 0},
            "timings": {},
            "error": None,
            "batch_job_id": None,
            "owner": owner,
            "created_at": now_iso(),
            "updated_at": None,
            "finished_at": None,
            "replaces": replaces,  # the source ETag of the version published before, whose tiles this job replaces
            "published": published,  # the version whose outputs are public (kept while a newer one fails)
            "run": run,  # the re-processing run that sent this job, if any
        }
        self._state = threading.Lock()  # guards the record; held briefly, never across a request
        self._writing = threading.Lock()  # keeps writes in order
        self._last_write = 0.0
        self._indexed_as = indexed_as  # the status the index lists this id under (an earlier run's)
        self._behind: Future | None = None  # the last background write

    def save(self, **changes: Any) -> dict[str, Any]:
        """Apply ``changes`` and write the record now; returns what was written."""
        behind = self._behind
        if behind is not None:
            behind.result()  # never raises: see _write_quietly
        with self._state:
            self.record.update(changes)
            if changes.get("status") in Status.FINAL:
                self.record["finished_at"] = now_iso()
        return self._write()

    def phase(self, name: str, done: int = 0, total: int = 0) -> None:
        """The job enters a phase: recorded in the background."""
        self._write_soon(progress={"phase": name, "done": done, "total": total})

    def progress(self, done: int, total: int) -> None:
        """Record progress at most every few seconds, in the background (it is also the heartbeat that keeps the
        claim alive). The end of a phase is not written here: the next phase, or the final save, says it anyway.
        """
        with self._state:
            self.record["progress"] = {**self.record["progress"], "done": done, "total": total}
            due = self._clock() - self._last_write >= self.HEARTBEAT_SECONDS
            if due:
                self._last_write = self._clock()  # one heartbeat, whichever thread noticed first
        if due:
            self._write_soon()

    def _write_soon(self, **changes: Any) -> None:
        with self._state:
            self.record.update(changes)  # now, so a later change is never undone by this write landing late
            self._behind = _background_writes.submit(self._write_quietly)

    def _write_quietly(self) -> None:
        try:
            self._write()
        except Exception as error:  # noqa: BLE001 - progress is advisory; the job's own save reports S3 trouble
            log.warning("could not record the progress of %s: %s", self.record["id"], error)

    def _write(self) -> dict[str, Any]:
        """Write the record as it is now (and move its index entry when its status changed)."""
        with self._writing:
            with self._state:
                self.record["updated_at"] = now_iso()
                self._last_write = self._clock()
                snapshot = json.loads(json.dumps(self.record, default=str))
            self.store.put_json(self.bucket, record_key(snapshot["id"]), snapshot)
            self._reindex(snapshot["status"], snapshot["id"])
            return snapshot

    def _reindex(self, status: str, image_id: str) -> None:
        move_index(self.store, self.bucket, image_id, self._indexed_as, status)
        self._indexed_as = status


_background_writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")  # in order, for every job
