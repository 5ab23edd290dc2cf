"""``python -m app reprocess STAGE``: send images through the normal path again, on purpose.

After a settings change or a new libvips, every selected source key gets the
event S3 would send for its current version, plus ``events.RUN_FIELD``, the
run's id. The engine converts a version already handled again once per run
(``records.claim``), so delivering a key twice in one run is harmless: a
stopped run that is resumed may re-send the last few keys without converting
anything twice. Withdrawn images are never sent; a document is re-run page by
page, through its page sources, so its pages convert again.

The plan reads each selected image's record once: its status (``--status``,
withdrawn), where its record lives, and its cost and time figures, which give
the estimate. The run keeps its state in the metadata bucket at
``reprocess/RUN.json``: the listing cursor (every key up to it was sent), what
was sent and has not reached a final state yet, and the counts so far. At most
``--max-in-flight`` images are converting at a time, so a run never bursts
past what the stage's concurrency or Lambda's async queue should take.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from app import records
from app.events import RUN_FIELD
from app.ids import PAGES_PREFIX, distinct_id, image_id_for, key_problem, page_of
from app.model import Status
from app.storage.s3 import S3Storage
from app.web import presenting
from config import Settings

STATE_PREFIX = "reprocess/"  # reserved in app.outputs: no image id can start with it
S3_EVENT_FUNCTION = "app.events.handle_s3_event"
POLL_SECONDS = 5.0  # how often the records of images in flight are read
SAVE_SECONDS = 2.0  # the state is written at most this often while sending (and always when stopping)
DEFAULT_IN_FLIGHT = 20
SHOWN_IN_DRY_RUN = 20

Deliver = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Candidate:
    """One source key to send, and where its record lives."""

    key: str
    etag: str
    image_id: str
    cursor: str  # the listing key it came from (a document's key for its pages): the run's place when sent
    record_etag: str = ""  # the record's S3 ETag when planned: a change says the delivery was handled
    status: str | None = None  # the record's status when planned (None: never converted)
    size: int | None = None
    usd: float | None = None  # compute and requests of its last conversion
    seconds: float | None = None


@dataclass
class Plan:
    candidates: list[Candidate]
    skipped: Counter = field(default_factory=Counter)  # why keys under the prefix are not sent

    def estimate(self, at_once: int) -> dict[str, Any]:
        """Dollars and wall-clock seconds, from the figures of the images' own last conversions."""
        costs = [c.usd for c in self.candidates if c.usd is not None]
        times = [c.seconds for c in self.candidates if c.seconds is not None]
        count = len(self.candidates)
        usd = sum(costs) + (count - len(costs)) * (sum(costs) / len(costs) if costs else 0.0)
        seconds = sum(times) + (count - len(times)) * (sum(times) / len(times) if times else 0.0)
        return {
            "images": count,
            "measured": len(costs),
            "usd": usd if costs else None,
            "seconds": seconds / max(1, min(at_once, count)) if times else None,
        }


def plan(store: S3Storage, settings: Settings, prefix: str = "", status: str | None = None, after: str = "") -> Plan:
    """What a run sends: every source key under ``prefix`` listed after ``after``, in listing order."""
    skipped: Counter = Counter()
    listed: list[tuple[str, str]] = []
    for key, etag in store.list_objects(settings.source_bucket, prefix):
        if key <= after:
            continue
        reason = _not_an_image(key)
        if reason:
            skipped[reason] += 1
        else:
            listed.append((key, etag))
    with ThreadPoolExecutor(max_workers=16) as pool:
        found = list(pool.map(lambda entry: _candidates(store, settings, *entry), listed))
    candidates = []
    for why, group in found:
        if why:
            skipped[why] += 1
            continue
        for candidate in group:
            if status is None or candidate.status == status:
                candidates.append(candidate)
            else:
                skipped[f"not {status}"] += 1
    return Plan(candidates, skipped)


def _not_an_image(key: str) -> str | None:
    """Keys the run does not send itself (the handler ignores them, or they are reached another way)."""
    if key.endswith("/"):
        return "folder markers"
    if key.lower().endswith(".csv"):
        return "item lists (.csv)"
    if key.startswith("tasks/"):
        return "task files (their images are re-run by their own keys)"
    if key.startswith(PAGES_PREFIX):
        return "page sources (re-run with their documents)"
    return None


def _candidates(store: S3Storage, settings: Settings, key: str, etag: str) -> tuple[str | None, list[Candidate]]:
    """The key's candidate (a document's: one per page source), or why it is skipped."""
    image_id, record, record_etag = _record_of(store, settings, key)
    if record and record["status"] == Status.WITHDRAWN:
        return "withdrawn", []
    if record and record.get("kind") == "item":
        pages = []
        for page in sorted(store.list_objects(settings.source_bucket, f"{PAGES_PREFIX}{image_id}/")):
            if (page_of(page[0]) or ("",))[0] != image_id:
                continue  # a nested item's page
            page_id, page_record, page_etag = _record_of(store, settings, page[0])
            if page_record and page_record["status"] != Status.WITHDRAWN:
                pages.append(_candidate(settings, page[0], page[1], page_id, key, page_record, page_etag))
        return None, pages
    return None, [_candidate(settings, key, etag, image_id, key, record, record_etag)]


def _record_of(store: S3Storage, settings: Settings, key: str) -> tuple[str, dict[str, Any] | None, str]:
    """(id, record, record's ETag) of the record this key's delivery writes: its own id's, or, for a key that
    is refused (a bad key, or its id held by another key), the record under its distinct id."""
    image_id = image_id_for(key)
    if not key_problem(key):
        found = store.get_json(settings.metadata_bucket, records.record_key(image_id))
        if found is None:
            return image_id, None, ""
        if found[0].get("source", {}).get("key") == key:
            return image_id, *found
    image_id = distinct_id(key)
    found = store.get_json(settings.metadata_bucket, records.record_key(image_id))
    return (image_id, *found) if found else (image_id, None, "")


def _candidate(
    settings: Settings,
    key: str,
    etag: str,
    image_id: str,
    cursor: str,
    record: dict[str, Any] | None,
    record_etag: str,
) -> Candidate:
    """``usd`` with the stage's own unit prices (a record keeps usage, not dollars); storage is left out, as
    a new version replaces the old one's objects."""
    if not record:
        return Candidate(key, etag, image_id, cursor)
    priced = presenting.cost(record, settings)
    same_version = record.get("source", {}).get("etag") == etag
    return Candidate(
        key,
        etag,
        image_id,
        cursor,
        record_etag,
        record["status"],
        record["source"].get("size") if same_version else None,
        priced["compute"] + priced["requests"] if priced else None,
        (record.get("timings") or {}).get("total"),
    )


def s3_event(bucket: str, key: str, etag: str, size: int | None, run: str) -> dict[str, Any]:
    """What S3 sends for an upload of this version, plus the run's id. ``configurationId`` names the handler
    after a colon, which is how Zappa's handler picks the function for an S3 record it was invoked with."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "eTag": etag}
    if size is not None:
        obj["size"] = size
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": f"reprocess:{S3_EVENT_FUNCTION}",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
        RUN_FIELD: run,
    }
    return {"Records": [record]}


def delivery(region: str, function: str, queue: str = "") -> Deliver:
    """How the stage receives events: its SQS queue when its settings name one (``EVENT_QUEUE``), else an
    asynchronous invocation of its function, as S3 itself invokes it."""
    import boto3

    if queue:
        sqs = boto3.client("sqs", region_name=region)
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        return lambda event: sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    functions = boto3.client("lambda", region_name=region)

    def invoke(event: dict[str, Any]) -> None:
        answer = functions.invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode())
        if answer.get("StatusCode") != 202:
            raise RuntimeError(f"Lambda did not accept the event for {function}: status {answer.get('StatusCode')}")

    return invoke


# The run's state ---------------------------------------------------------------------------------------


def new_run_id() -> str:
    """Sortable by start time, unique, and within what an event record may carry ([A-Za-z0-9_-], 64)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def state_key(run: str) -> str:
    return f"{STATE_PREFIX}{run}.json"


def load_state(store: S3Storage, settings: Settings, run: str) -> dict[str, Any] | None:
    found = store.get_json(settings.metadata_bucket, state_key(run)) if _run_id_ok(run) else None
    return found[0] if found else None


def _run_id_ok(run: str) -> bool:
    return bool(run) and len(run) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in run)


def new_state(run: str, stage: str, prefix: str, status: str | None, planned: int) -> dict[str, Any]:
    return {
        "run": run,
        "stage": stage,
        "prefix": prefix,
        "status": status,
        "created_at": records.now_iso(),
        "updated_at": None,
        "cursor": "",
        "sent": 0,
        "planned": planned,
        "pending": [],
        "settled": {},
        "finished": False,
    }


class Run:
    """Sends a plan's candidates with at most ``at_once`` in flight, and follows them to a final state."""

    def __init__(
        self,
        store: S3Storage,
        settings: Settings,
        state: dict[str, Any],
        deliver: Deliver,
        at_once: int = DEFAULT_IN_FLIGHT,
        progress: Progress | None = None,
    ) -> None:
        self.store, self.settings, self.state, self.deliver = store, settings, state, deliver
        self.at_once = max(1, at_once)
        self.progress = progress or Progress(0)
        self._saved = 0.0

    @property
    def run_id(self) -> str:
        return self.state["run"]

    def execute(self, candidates: Iterable[Candidate]) -> dict[str, Any]:
        """Send, then wait until everything sent is final. Ctrl-C stops it with the state saved."""
        try:
            for candidate in candidates:
                while len(self.state["pending"]) >= self.at_once:
                    if not self._settle():
                        time.sleep(POLL_SECONDS)
                self._send(candidate)
            while self.state["pending"]:
                if not self._settle():
                    time.sleep(POLL_SECONDS)
            self.state["finished"] = True
        finally:
            self.save()
        return self.state

    def _send(self, candidate: Candidate) -> None:
        event = s3_event(self.settings.source_bucket, candidate.key, candidate.etag, candidate.size, self.run_id)
        self.deliver(event)
        self.state["pending"].append(
            {"key": candidate.key, "id": candidate.image_id, "etag": candidate.etag, "record": candidate.record_etag}
        )
        self.state["sent"] += 1
        self.state["cursor"] = candidate.cursor
        self.progress.sent(self.state)
        if time.monotonic() - self._saved >= SAVE_SECONDS:
            self.save()

    def _settle(self) -> int:
        """Read the records of what is in flight; returns how many reached a final state."""
        pending = self.state["pending"]
        with ThreadPoolExecutor(max_workers=min(16, len(pending) or 1)) as pool:
            outcomes = list(pool.map(self._outcome, pending))
        settled = [outcome for outcome in outcomes if outcome]
        if settled:
            self.state["pending"] = [p for p, outcome in zip(pending, outcomes, strict=True) if not outcome]
            counts = Counter(self.state["settled"])
            counts.update(settled)
            self.state["settled"] = dict(counts)
            self.progress.settled(self.state)
            self.save()
        return len(settled)

    def _outcome(self, pending: dict[str, str]) -> str | None:
        """The final status this run's delivery led to; None while it is still on its way."""
        found = self.store.get_json(self.settings.metadata_bucket, records.record_key(pending["id"]))
        if not found:  # none yet (never converted), or none any more (a page its document no longer has)
            return "removed" if pending["record"] else None
        record, etag = found
        if record["status"] not in Status.FINAL:
            return None
        if record.get("run") == self.run_id or etag != pending["record"]:  # converted, refused or superseded
            return record["status"]
        return None

    def save(self) -> None:
        self.state["updated_at"] = records.now_iso()
        self.store.put_json(self.settings.metadata_bucket, state_key(self.run_id), self.state)
        self._saved = time.monotonic()


# What people see ---------------------------------------------------------------------------------------


class Progress:
    """Images of the run that reached a final state: a bar on a terminal, a line every few seconds in a log."""

    LOG_EVERY_SECONDS = 10.0

    def __init__(self, total: int, interactive: bool | None = None) -> None:
        self.total = total
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._bar: Any = None
        self._logged = 0.0

    def __enter__(self) -> Progress:
        if self.interactive and self.total:
            from tqdm import tqdm  # only terminals get bars

            self._bar = tqdm(total=self.total, unit="image", desc="re-processed", file=sys.stderr)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def sent(self, state: dict[str, Any]) -> None:
        self._show(state, force=False)

    def settled(self, state: dict[str, Any]) -> None:
        self._show(state, force=not self.interactive and not state["pending"])

    def _show(self, state: dict[str, Any], force: bool) -> None:
        done = sum(state["settled"].values())
        line = summary_line(state)
        if self._bar is not None:
            self._bar.n = done
            self._bar.set_postfix_str(line, refresh=True)
        elif force or time.monotonic() - self._logged >= self.LOG_EVERY_SECONDS:
            self._logged = time.monotonic()
            print(f"[{done}/{self.total}] {line}", file=sys.stderr, flush=True)


def summary_line(state: dict[str, Any]) -> str:
    counts = ", ".join(f"{count} {status}" for status, count in sorted(state["settled"].items())) or "none final yet"
    return f"{state['sent']} sent; {counts}; {len(state['pending'])} converting"


def describe(chosen: Plan, at_once: int, scope: str) -> Iterator[str]:
    """What the run will do, before it does it."""
    estimate = chosen.estimate(at_once)
    statuses = Counter(c.status or "never converted" for c in chosen.candidates)
    yield f"{_images(estimate['images'])} to re-process ({scope})" + (
        ": " + ", ".join(f"{n:,} {status}" for status, n in sorted(statuses.items())) if statuses else ""
    )
    for reason, count in sorted(chosen.skipped.items()):
        yield f"  not sent: {count:,} {reason}"
    if not chosen.candidates:
        return
    if estimate["usd"] is None:
        yield "Estimated cost and time: unknown (none of these images has a finished conversion to learn from)"
        return
    measured = f"from {estimate['measured']:,} earlier conversions" + (
        f", the other {estimate['images'] - estimate['measured']:,} at their average"
        if estimate["measured"] < estimate["images"]
        else ""
    )
    yield f"Estimated cost: {presenting.dollars(estimate['usd'])} in compute and S3 requests ({measured})"
    yield f"Estimated time: {_duration(estimate['seconds'])}, with at most {at_once} converting at a time"


def _images(count: int) -> str:
    return f"{count:,} image" if count == 1 else f"{count:,} images"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


# The command -------------------------------------------------------------------------------------------


def command(
    store: S3Storage,
    settings: Settings,
    stage: str,
    connect: Callable[[], Deliver],
    *,
    prefix: str = "",
    status: str | None = None,
    dry_run: bool = False,
    resume: str | None = None,
    yes: bool = False,
    at_once: int = DEFAULT_IN_FLIGHT,
    out: Callable[[str], None] = print,
    err: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    confirm: Callable[[str], str] = input,
    interactive: bool | None = None,
) -> int:
    """Plan, say what it will cost, ask, send, follow. ``connect`` makes the delivery (not needed for a dry run).

    Exit status: 0 when the run finished, 1 on a refusal, 130 when stopped (its state kept for ``--resume``).
    """
    interactive = sys.stdin.isatty() if interactive is None else interactive
    state = None
    if resume:
        state = load_state(store, settings, resume)
        if state is None:
            err(f"error: no run {resume!r} in s3://{settings.metadata_bucket}/{STATE_PREFIX}")
            return 1
        if state["stage"] != stage:
            err(f"error: run {resume} belongs to stage {state['stage']}, not {stage}")
            return 1
        prefix, status = state["prefix"], state["status"]
        if state["finished"]:
            out(f"Run {resume} finished already: {summary_line(state)}")
            return 0
    chosen = plan(store, settings, prefix, status, after=state["cursor"] if state else "")
    scope = f"stage {stage}, prefix {prefix or '(all)'}, status {status or 'any'}"
    if state:
        scope += f"; run {state['run']}: {state['sent']:,} sent before, {len(state['pending'])} still converting"
    for line in describe(chosen, at_once, scope):
        out(line)
    if dry_run:
        for candidate in chosen.candidates[:SHOWN_IN_DRY_RUN]:
            out(f"  would send s3://{settings.source_bucket}/{candidate.key} ({candidate.status or 'never converted'})")
        if len(chosen.candidates) > SHOWN_IN_DRY_RUN:
            out(f"  ... and {len(chosen.candidates) - SHOWN_IN_DRY_RUN:,} more")
        out("Dry run: nothing was sent.")
        return 0
    if not chosen.candidates and not (state and state["pending"]):
        out("Nothing to re-process.")
        return 0
    if not yes and not _confirmed(interactive, confirm, out, err):
        return 1
    deliver = connect()
    if state is None:
        state = new_state(new_run_id(), stage, prefix, status, len(chosen.candidates))
    else:
        state["planned"] = state["sent"] + len(chosen.candidates)
    run = Run(store, settings, state, deliver, at_once)
    total = state["planned"]
    out(f"Run {run.run_id}: state at s3://{settings.metadata_bucket}/{state_key(run.run_id)}")
    try:
        with Progress(total) as progress:
            run.progress = progress
            run.execute(chosen.candidates)
    except KeyboardInterrupt:
        out(f"\nStopped: {summary_line(state)}. Resume with: python -m app reprocess {stage} --resume {run.run_id}")
        return 130
    out(f"Run {run.run_id} finished: {summary_line(state)}")
    return 0


def _confirmed(
    interactive: bool, confirm: Callable[[str], str], out: Callable[[str], None], err: Callable[[str], None]
) -> bool:
    """A yes typed at a terminal; without one (CI, cron) nobody can answer, so it is a refusal, never a hang."""
    if not interactive:
        err("error: refusing to start without confirmation: stdin is not a terminal; pass --yes to start anyway")
        return False
    try:
        answer = confirm("Start? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    out("Not started.")
    return False
