"""Collections on top of the per-image engine, fanned out in batches: every image converts through the normal path.

Start: a task file under ``tasks/`` arrives. The task, its CSV, mapping and
page labels are checked and the source prefix listed (with the claims under
it, which say which images were handled at their current version); a bad
input fails the task here, before anything is published. The collection
record ``collections/ID.json`` says ``running``, and one batch document per
``plan.BATCH_IMAGES`` images is written under ``collection-batches/`` in the
source bucket. S3 raises an event for each: a batch is one invocation of its
own, retried on its own. A run is named by its inputs (``plan.run_id``): a
restarted start writes only the batch documents of batches not finished. Beside
them, membership shards (``members/``, {id: batch}) let a withdrawn image find
its batch (``app/collection/withdrawal.py``).

Batch: images handled at their current version are read (one GET each) and,
if final, noted in ``started/BATCH.json``; every other image is copied onto
itself (one COPY each) with user metadata naming its batch, its place in it
and how many images the batch sent, so S3 raises its event (one Lambda invocation or Batch job).

Completion: the listener (``image_finished``) reads that metadata (one HEAD),
writes the image's marker ``marks/BATCH/GROUP/ID`` (one PUT) and lists its
group's markers (one LIST of at most ``GROUP`` keys); the image completing its
group marks the group and lists the batch's groups. The image completing its
batch reads the batch's job
records (one GET each), publishes the manifests of the batch's complete items
and writes the batch's summary; the batch completing the run assembles the
Collection once, from the summaries. Nothing shared is rewritten per image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any

from app import records
from app.collection import manifests, plan, spreadsheet
from app.collection.task import Task, TaskError, group_items, parse_task
from app.errors import SourceGone
from app.ids import PAGES_PREFIX
from app.model import SourceRef, Status
from app.pipeline.manifest import text
from app.storage.s3 import PreconditionFailed, S3Storage, thread_pool
from config import Settings

log = logging.getLogger(__name__)

TASKS_PREFIX = "tasks/"
COLLECTIONS_PREFIX = "collections/"
BATCHES_PREFIX = "collection-batches/"  # source bucket: one object per batch, whose event runs the batch
RUNS_PREFIX = "collection-runs/"  # metadata bucket: a run's bookkeeping
MEMBER_TAG = "tiler-collection"  # user metadata on a sent image: COLLECTION/RUN/BATCH/ORDINAL/SENT
GROUP = 25  # a batch's markers are counted in groups this size: each count lists only a few keys
SHOWN = 500  # items and failures kept in the collection record; the rest are counted
FINISHED = (Status.DONE, Status.FAILED, Status.WITHDRAWN)  # at the listed version: nothing to send
WITHDRAWN = "withdrawn.json"  # a run's withdrawn images; its ETag is the generation withdrawals publish against
MEMBERS = "members/"  # a run's images by shard of their id: {id: batch}, so a withdrawal finds its batch


def is_task_key(key: str) -> bool:
    return key.startswith(TASKS_PREFIX) and key.endswith(".json")


def is_collection_key(key: str) -> bool:
    """A task file or a batch document: both start work here rather than in the image engine."""
    return is_task_key(key) or (key.startswith(BATCHES_PREFIX) and key.endswith(".json"))


def collection_key(collection: str) -> str:
    return f"{COLLECTIONS_PREFIX}{collection}.json"


def handle(ref: SourceRef, settings: Settings) -> dict[str, Any] | None:
    """The entry point's door for ``is_collection_key`` keys."""
    return run_batch(ref, settings) if ref.key.startswith(BATCHES_PREFIX) else start(ref, settings)


def _run_prefix(collection: str, run: str) -> str:
    return f"{RUNS_PREFIX}{collection}/{run}/"


def batch_key(collection: str, run: str, number: int) -> str:
    return f"{BATCHES_PREFIX}{collection}/{run}/{number:05}.json"


# Start ------------------------------------------------------------------------------------------


def start(ref: SourceRef, settings: Settings) -> dict[str, Any]:
    """A task file arrived: check everything, record the collection, write the batch documents of every batch not
    finished (all of them the first time; after a failure, those that did not finish)."""
    store = S3Storage(settings.upload_workers)
    collection = PurePosixPath(ref.key).stem
    try:
        task = _read_task(store, ref, settings)
        collection = task.collection
        current, inputs = _inputs(store, settings, task)
        items = group_items(task, list(current))
        documents = plan.described(items, *inputs)
    except TaskError as error:
        document = _record(collection, ref, None, "", [], 0)
        document.update(status=Status.FAILED, error=str(error), finished_at=records.now_iso())
        store.put_json(settings.metadata_bucket, collection_key(collection), document)
        return document
    run = plan.run_id([ref.etag or "", *(json.dumps(i, sort_keys=True) for i in inputs), *map(str, current.items())])
    claimed = _claimed(store, settings, [page["id"] for item in documents for page in item["pages"]])
    for item in documents:
        for page in item["pages"]:
            page["etag"] = current[page["key"]]
            page["claimed"] = page["id"] in claimed
    batches = plan.batches(documents)
    found = store.get_json(settings.metadata_bucket, collection_key(collection))
    if found and found[0].get("run") == run and found[0]["status"] in Status.FINAL:
        run = plan.run_id([run, found[0].get("finished_at") or ""])  # dropped again when over: a new run
    record = found[0] if found and found[0].get("run") == run else None
    if record is None:
        record = _record(collection, ref, task, run, documents, len(batches))
        store.put_json(settings.metadata_bucket, collection_key(collection), record)
    summaries = f"{_run_prefix(collection, run)}batches/"
    finished = {key[len(summaries) :] for key in store.list_keys(settings.metadata_bucket, summaries)}
    header = {"collection": collection, "run": run, "batches": len(batches), "task": task.__dict__}
    missing = [
        (batch_key(collection, run, number), {**header, "batch": number, "items": items})
        for number, items in enumerate(batches)
        if f"{number:05}.json" not in finished  # a batch that gave up runs again; a finished one never
    ]
    if not finished:  # written once per run, one document per batch's worth of images
        _write_members(store, settings, _run_prefix(collection, run), batches)
    parallel(store, lambda entry: store.put_json(settings.source_bucket, *entry), missing)
    log.info("collection %s run %s: %d images in %d batches, %d written now", collection, run,
             record["progress"]["total"], len(batches), len(missing))  # fmt: skip
    return record


def _inputs(store: S3Storage, settings: Settings, task: Task) -> tuple[dict[str, str], tuple]:
    """The images under the prefix ({key: ETag}) and the spreadsheet inputs: CSV text, mapping, page labels text,
    pattern."""
    current = dict(store.list_objects(settings.source_bucket, task.source_prefix))
    csv_text = _read_text(store, settings, task.csv_key, "the CSV") if task.csv_key else None
    mapping = task.mapping
    if isinstance(mapping, str):
        try:
            mapping = json.loads(_read_text(store, settings, mapping, "the mapping"))
        except json.JSONDecodeError as error:
            raise TaskError(f"the mapping is not valid JSON: {error}") from None
    labels_text = (
        _read_text(store, settings, task.page_labels_key, "the page labels CSV") if task.page_labels_key else None
    )
    return current, (csv_text, mapping, labels_text, task.page_label_pattern)


def member_shard(image_id: str, shards: int) -> str:
    """Which of a run's ``shards`` membership documents names ``image_id``."""
    number = int(hashlib.sha256(image_id.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16) % max(shards, 1)
    return f"{MEMBERS}{number:05}.json"


def _write_members(store: S3Storage, settings: Settings, prefix: str, batches: list[list[dict[str, Any]]]) -> None:
    """{id: batch} for every image of the run, in as many shards as batches: a withdrawn image finds the batch
    that holds it with one GET, not a read of every batch."""
    shards: dict[str, dict[str, int]] = {}
    for number, items in enumerate(batches):
        for item in items:
            for page in item["pages"]:
                shards.setdefault(member_shard(page["id"], len(batches)), {})[page["id"]] = number
    entries = [(settings.metadata_bucket, f"{prefix}{shard}", members) for shard, members in shards.items()]
    parallel(store, lambda entry: store.put_json(*entry), entries)


def _claimed(store: S3Storage, settings: Settings, image_ids: list[str]) -> set[str]:
    """The ids that have a claim (``claims/ID.json``), from one listing under the ids' common prefix: only these
    images can have been converted already; the others are sent without reading anything."""
    wanted, prefix = set(image_ids), records.CLAIMS_PREFIX
    keys = store.list_keys(settings.metadata_bucket, prefix + os.path.commonprefix(image_ids))
    return {key[len(prefix) :].removesuffix(".json") for key in keys} & wanted


# Batches ----------------------------------------------------------------------------------------


def run_batch(ref: SourceRef, settings: Settings) -> dict[str, Any] | None:
    """Send a batch's unfinished images on their way; a batch already summarised is not run again."""
    store = S3Storage(settings.upload_workers)
    found = store.get_json(settings.source_bucket, ref.key)
    if found is None:
        return None
    batch = found[0]
    collection, run, number = batch["collection"], batch["run"], batch["batch"]
    prefix = _run_prefix(collection, run)
    if store.get_json(settings.metadata_bucket, f"{prefix}batches/{number:05}.json"):
        return {"status": Status.DONE}
    pages = [page for item in batch["items"] for page in item["pages"]]
    started = store.get_json(settings.metadata_bucket, f"{prefix}started/{number:05}.json")
    if started is None:
        already = _already_finished(store, settings, [page for page in pages if page["claimed"]])
        state = {"already": already, "sent": [page["id"] for page in pages if page["id"] not in already]}
        store.put_json(settings.metadata_bucket, f"{prefix}started/{number:05}.json", state)
    else:
        state = started[0]
    marked = set(_marked(store, settings, prefix, number))
    keys = {page["id"]: page["key"] for page in pages}
    count = len(state["sent"])
    unmarked = [(n, image_id) for n, image_id in enumerate(state["sent"]) if image_id not in marked]

    def send(entry: tuple[int, str]) -> None:
        ordinal, image_id = entry
        tag = f"{collection}/{run}/{number}/{ordinal}/{count}"
        try:
            store.touch(settings.source_bucket, keys[image_id], {MEMBER_TAG: tag})
        except SourceGone as gone:  # deleted since the start listed it: no job will mark it
            _mark(store, settings, tag, image_id, {"status": Status.GONE, "error": str(gone)})

    parallel(store, send, unmarked)
    if not unmarked:
        _complete_batch(store, settings, batch, f"batch:{number}")
    return {"status": Status.RUNNING}


def _already_finished(store: S3Storage, settings: Settings, pages: list[dict[str, Any]]) -> dict[str, Any]:
    """{id: {status, error}} of the pages whose job record is final for the version listed."""

    def outcome(page: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        record = records.read_record(store, settings.metadata_bucket, page["id"])
        final = record and record["status"] in FINISHED and record["source"].get("etag") == page["etag"]
        return page["id"], {"status": record["status"], "error": record.get("error")} if final else None

    return {image_id: found for image_id, found in parallel(store, outcome, pages) if found}


def _marked(store: S3Storage, settings: Settings, prefix: str, number: int) -> list[str]:
    """The ids of the batch's images that have their marker (``marks/BATCH/GROUP/ID``)."""
    marks = f"{prefix}marks/{number:05}/"
    return [key[len(marks) :].split("/", 1)[1] for key in store.list_keys(settings.metadata_bucket, marks)]


# Completion -------------------------------------------------------------------------------------


def image_finished(record: dict[str, Any], settings: Settings, key: str) -> None:
    """Mark a finished image off the batch that sent it (if one did); complete the batch if it was the last."""
    if record.get("status") not in Status.FINAL or key.startswith(PAGES_PREFIX):
        return
    store = S3Storage(settings.upload_workers)
    try:
        tag = store.metadata_of(settings.source_bucket, key).get(MEMBER_TAG)
    except SourceGone:
        return
    if not tag:
        return
    _mark(store, settings, tag, record["id"], {"status": record["status"], "error": record.get("error")})


def _mark(store: S3Storage, settings: Settings, tag: str, image_id: str, outcome: dict[str, Any]) -> None:
    """Write the image's marker; if that completes its group, mark the group; if that completes the batch,
    complete it. ``tag`` is the image's MEMBER_TAG."""
    collection, run, number, ordinal, sent = tag.split("/")
    number, group, sent = int(number), int(ordinal) // GROUP, int(sent)
    prefix = _run_prefix(collection, run)
    store.put_json(settings.metadata_bucket, f"{prefix}marks/{number:05}/{group:03}/{image_id}", outcome)
    members = min(GROUP, sent - group * GROUP)
    if sum(1 for _ in store.list_keys(settings.metadata_bucket, f"{prefix}marks/{number:05}/{group:03}/")) < members:
        return
    store.put_json(settings.metadata_bucket, f"{prefix}groups/{number:05}/{group:03}", {})
    groups = -(-sent // GROUP)
    if sum(1 for _ in store.list_keys(settings.metadata_bucket, f"{prefix}groups/{number:05}/")) < groups:
        return
    found = store.get_json(settings.source_bucket, batch_key(collection, run, number))
    if found:
        _complete_batch(store, settings, found[0], f"image:{image_id}")


def _complete_batch(store: S3Storage, settings: Settings, batch: dict[str, Any], owner: str) -> None:
    """Publish the batch's complete items, write its summary, and assemble the Collection if it was the last.

    Several of a batch's last images may see it complete at once: one claim lets only one of them do it."""
    collection, run, number = batch["collection"], batch["run"], batch["batch"]
    prefix = _run_prefix(collection, run)
    if not _exclusive(store, settings, f"{prefix}completing/{number:05}.json", owner):
        return
    pages = [page for item in batch["items"] for page in item["pages"]]
    found = parallel(store, lambda p: records.read_record(store, settings.metadata_bucket, p["id"]), pages)
    facts = {page["id"]: record for page, record in zip(pages, found, strict=True)}
    task = Task(**batch["task"])
    summary: dict[str, Any] = {"items": [], "failures": [], "done": 0, "parts": {}}
    publish = []
    for item in batch["items"]:
        joined = with_facts(item, facts, summary)
        if item["part"][1] > 1:
            summary["parts"][item["identifier"]] = {"part": item["part"][0], "item": joined}
        if item["part"][0] == 0:
            summary["items"].append({"identifier": item["identifier"], "label": _label(item), "pages": None})
        if item["part"][1] == 1 and joined:
            publish.append(joined)
    urls = dict(parallel(store, lambda item: publish_item(store, settings, task, item), publish))
    for entry in summary["items"]:
        entry["manifest"] = urls.get(entry["identifier"])
        entry["withdrawn"] = entry["identifier"] in urls and not urls[entry["identifier"]]
    store.put_json(settings.metadata_bucket, f"{prefix}batches/{number:05}.json", summary)
    if sum(1 for _ in store.list_keys(settings.metadata_bucket, f"{prefix}batches/")) >= batch["batches"]:
        _assemble(store, settings, collection, run, batch["batches"], task, owner)
    _done(store, settings, f"{prefix}completing/{number:05}.json", owner)


def with_facts(item: dict[str, Any], facts: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any] | None:
    """The item with each page's size, if every page is done or withdrawn (kept, marked, for the pages'
    positions); failures go in the summary."""
    pages = []
    for page in item["pages"]:
        record = facts.get(page["id"])
        if record and record["status"] == Status.WITHDRAWN:  # taken down: never painted, not a failure
            pages.append({**page, "withdrawn": True})
            summary.setdefault("withdrawn", []).append(page["id"])
        elif record and record["status"] == Status.DONE and record.get("facts"):
            summary["done"] += 1
            size, versions = record["facts"], record.get("iiif_versions", [3])
            pages.append({**page, "width": size["width"], "height": size["height"], "versions": versions})
        else:
            status = record["status"] if record else Status.GONE
            error = (
                (record.get("error") or "changed while the collection ran: drop the task again")
                if record
                else "the source was deleted before it could be converted"
            )
            summary["failures"].append({"id": page["id"], "key": page["key"], "status": status, "error": error})
    return {**item, "pages": pages} if len(pages) == len(item["pages"]) else None


def publish_item(store: S3Storage, settings: Settings, task: Task, item: dict[str, Any]) -> tuple[str, str | None]:
    """Write the item's manifest without its withdrawn pages: (identifier, URL); an item left with no page has
    its manifest deleted (URL None) and drops out of the Collection."""
    url = manifest_url(settings, task, item["identifier"])
    key = f"{task.destination_prefix}/{item['identifier']}/manifest.json"
    shown = [page for page in item["pages"] if not page.get("withdrawn")]
    if not shown:
        store.delete_keys(settings.tiles_bucket, [key])
        return item["identifier"], None
    positions = {page["id"]: n for n, page in enumerate(shown)}
    properties = dict(item["properties"])
    for selector in ("thumbnail", "start"):  # page positions: they move when a page before them is withdrawn
        if selector in properties:
            chosen = positions.get(item["pages"][properties[selector]]["id"])
            properties.pop(selector) if chosen is None else properties.update({selector: chosen})
    item = {**item, "properties": properties, "pages": shown}
    manifest = manifests.item_manifest(item, settings.public_base_url.rstrip("/"), url, settings.iiif_max_size)
    store.put_bytes(settings.tiles_bucket, key, json.dumps(manifest).encode())
    return item["identifier"], url


def manifest_url(settings: Settings, task: Task, identifier: str) -> str:
    public = (task.public_base_url or settings.public_base_url).rstrip("/")
    return f"{public}/{task.destination_prefix}/{identifier}/manifest.json"


def _label(item: dict[str, Any]) -> dict[str, list[str]]:
    return item["properties"].get("label") or text(item["identifier"])


def _title(item: dict[str, Any]) -> str:
    """The label to show people: the first value of the first language given."""
    return next((values[0] for values in _label(item).values() if values), item["identifier"])


def _assemble(
    store: S3Storage, settings: Settings, collection: str, run: str, count: int, task: Task, owner: str
) -> None:
    """Once per run: join split items, publish the Collection if every item is complete, record the outcome.

    Again if an image was withdrawn meanwhile (its listener, finding the run unfinished, leaves the Collection to
    this): the summaries read may predate the withdrawal's note in them."""
    prefix = _run_prefix(collection, run)
    if not _exclusive(store, settings, f"{prefix}assembly.json", owner):
        return
    while True:
        generation = withdrawal_generation(store, settings, prefix)
        _assemble_once(store, settings, collection, run, count, task)
        if withdrawal_generation(store, settings, prefix) == generation:
            break
    _done(store, settings, f"{prefix}assembly.json", owner)


def withdrawal_generation(store: S3Storage, settings: Settings, prefix: str) -> str | None:
    """The ETag of the run's list of withdrawn images: it moves whenever a withdrawal registers."""
    found = store.get_json(settings.metadata_bucket, f"{prefix}{WITHDRAWN}")
    return found[1] if found else None


def _assemble_once(store: S3Storage, settings: Settings, collection: str, run: str, count: int, task: Task) -> None:
    prefix = _run_prefix(collection, run)
    keys = [f"{prefix}batches/{number:05}.json" for number in range(count)]
    summaries = [found[0] for found in parallel(store, lambda k: store.get_json(settings.metadata_bucket, k), keys)]
    urls = {entry["identifier"]: entry["manifest"] for s in summaries for entry in s["items"] if entry["manifest"]}
    parts: dict[str, list[tuple[int, dict[str, Any] | None]]] = {}
    for summary in summaries:
        for identifier, part in summary["parts"].items():
            parts.setdefault(identifier, []).append((part["part"], part["item"]))
    whole = [
        {**ordered[0][1], "pages": [page for _, item in ordered for page in item["pages"]]}
        for ordered in (sorted(found, key=lambda p: p[0]) for found in parts.values())
        if all(item for _, item in ordered)
    ]
    joined = dict(parallel(store, lambda item: publish_item(store, settings, task, item), whole))
    urls.update({identifier: url for identifier, url in joined.items() if url})
    dropped = {identifier for identifier, url in joined.items() if not url}
    items = [
        {**e, "manifest": urls.get(e["identifier"])}
        for s in summaries
        for e in s["items"]
        if not e.get("withdrawn") and e["identifier"] not in dropped
    ]
    failures = [failure for summary in summaries for failure in summary["failures"]]
    found = store.get_json(settings.metadata_bucket, collection_key(collection))
    document = found[0] if found and found[0].get("run") == run else _record(collection, None, task, run, [], count)
    if all(e["manifest"] for e in items) and not failures:
        publish_collection(store, settings, task, items, document)
        document.update(status=Status.DONE, error=None)
    else:
        _list_manifests(document, urls)
        document.update(status=Status.FAILED, error="some images failed: the Collection is not published")
    document.update(
        progress={
            "done": sum(s["done"] for s in summaries),
            "total": document["progress"]["total"] - sum(len(s.get("withdrawn", ())) for s in summaries),
        },
        failures=failures[:SHOWN],
        failures_total=len(failures),
        updated_at=records.now_iso(),
        finished_at=records.now_iso(),
    )
    registered = store.get_json(settings.metadata_bucket, f"{prefix}{WITHDRAWN}")  # withdrawn since the batches
    withdrawn = sorted(
        {*(registered[0]["ids"] if registered else ()), *(i for s in summaries for i in s.get("withdrawn", ()))}
    )
    if withdrawn:
        document.update(withdrawn=withdrawn[:SHOWN], withdrawn_total=len(withdrawn))
    store.put_json(settings.metadata_bucket, collection_key(collection), document)


def publish_collection(
    store: S3Storage, settings: Settings, task: Task, items: list[dict[str, Any]], document: dict[str, Any]
) -> None:
    """Write the IIIF Collection of ``items`` (summary entries, each with its manifest's URL) and name it and
    the manifests in the collection record ``document``."""
    public = (task.public_base_url or settings.public_base_url).rstrip("/")
    key = f"{task.destination_prefix}/collection.json"
    listing = manifests.collection(
        f"{public}/{key}", text(task.label or task.collection), [(e["manifest"], e["label"]) for e in items]
    )
    store.put_bytes(settings.tiles_bucket, key, json.dumps(listing).encode())
    _list_manifests(document, {e["identifier"]: e["manifest"] for e in items})
    document["urls"]["collection"] = f"{public}/{key}"


def _list_manifests(document: dict[str, Any], urls: dict[str, str]) -> None:
    document["urls"] = {"manifests": {i: u for i, u in list(urls.items())[:SHOWN]}, "manifests_total": len(urls)}


def _exclusive(store: S3Storage, settings: Settings, key: str, owner: str) -> bool:
    """Whether ``owner`` may do the once-only step the claim ``key`` guards: it made the claim now, or the claim
    is its own (Lambda's retry of the same event, after a failure) or stale (its holder died and was not retried);
    never once the step is done (a late duplicate of the same event)."""
    claim = {"owner": owner, "at": records.now_iso()}
    try:
        store.put_json(settings.metadata_bucket, key, claim, create_only=True)
        return True
    except PreconditionFailed:
        held = store.get_json(settings.metadata_bucket, key)
    if (
        held is None
        or held[0].get("done")
        or (held[0].get("owner") != owner and records.age_seconds(held[0].get("at")) < settings.stale_after_seconds)
    ):
        return False
    try:
        store.put_json(settings.metadata_bucket, key, claim, if_match=held[1])
    except PreconditionFailed:
        return False
    return True


def _done(store: S3Storage, settings: Settings, key: str, owner: str) -> None:
    """The step the claim ``key`` guards is done: nobody does it again."""
    store.put_json(settings.metadata_bucket, key, {"owner": owner, "at": records.now_iso(), "done": True})


# Reading the inputs -----------------------------------------------------------------------------


def _read_task(store: S3Storage, ref: SourceRef, settings: Settings) -> Task:
    try:
        task = parse_task(json.loads(store.read_text(ref.bucket, ref.key)))
    except SourceGone:
        raise TaskError("the task file was deleted before it could be read") from None
    except UnicodeDecodeError:
        raise TaskError("the task file is not UTF-8 text (UTF-16 or Latin-1?): save it as UTF-8") from None
    except json.JSONDecodeError as error:
        raise TaskError(f"the task file is not valid JSON: {error}") from None
    except RecursionError:
        raise TaskError("the task file is nested too deeply") from None
    if task.source_bucket and task.source_bucket != settings.source_bucket:
        raise TaskError(f"the task names bucket {task.source_bucket!r}; images must be in {settings.source_bucket!r}")
    return task


def _read_text(store: S3Storage, settings: Settings, key: str, name: str) -> str:
    """A CSV or mapping from the source bucket, size-limited and decoded (``spreadsheet.decode``)."""
    try:
        data = store.read_bytes(settings.source_bucket, key, spreadsheet.MAX_CSV_BYTES)
    except SourceGone:
        raise TaskError(f"{name} s3://{settings.source_bucket}/{key} does not exist") from None
    except ValueError as error:
        raise TaskError(f"{name} s3://{settings.source_bucket}/{key} is {error}: split the collection") from None
    return spreadsheet.decode(data, name)


def _record(
    collection: str, ref: SourceRef | None, task: Task | None, run: str, items: list[dict[str, Any]], batches: int
) -> dict[str, Any]:
    """The collection record as a run starts: its items (the first ``SHOWN``), totals, no outcome yet."""
    return {
        "id": collection,
        "kind": "collection",
        "run": run,
        "task_source": ref.to_dict() if ref else None,
        "status": Status.RUNNING,
        "task": task.__dict__ if task else None,
        "error": None,
        "urls": {},
        "failures": [],
        "failures_total": 0,
        "items": [
            {"identifier": item["identifier"], "title": _title(item), "images": len(item["pages"])}
            for item in items[:SHOWN]
        ],
        "items_total": len(items),
        "batches": batches,
        "progress": {"done": None, "total": sum(len(item["pages"]) for item in items)},
        "created_at": records.now_iso(),
        "updated_at": records.now_iso(),
        "finished_at": None,
    }


def parallel(store: S3Storage, call: Callable[[Any], Any], values: Iterable[Any]) -> list[Any]:
    """``call`` on every value on the store's bounded pool, results in order; the first error is raised."""
    futures = [thread_pool(store.workers).submit(call, value) for value in values]
    return [future.result() for future in futures]
