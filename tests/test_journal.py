"""The job record's writes: progress in the background, in order, and the job's own saves last."""

import threading
from datetime import datetime, timedelta

from app.model import SourceRef, Status
from app.records import Journal, index_key, record_key
from tests.helpers import journals_settled


class HeldStore:
    """Stands in for S3Storage: keeps the order of writes, and holds each one until the test opens ``gate``."""

    def __init__(self, held: bool = False) -> None:
        self.gate = threading.Event()
        if not held:
            self.gate.set()
        self.writes: list[tuple[str, dict]] = []
        self.deleted: list[str] = []
        self._lock = threading.Lock()

    def put_json(self, bucket: str, key: str, document: dict, **_: object) -> str:
        if not self.gate.wait(timeout=10):  # a caller that waits for its own write would never open the gate
            raise AssertionError("a write was held and nobody opened the gate")
        with self._lock:
            self.writes.append((key, document))
        return '"etag"'

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            self.deleted.append(key)

    def records(self) -> list[dict]:
        return [document for key, document in self.writes if key == record_key("img")]


def _journal(store: HeldStore, clock=None) -> Journal:
    ref = SourceRef("src", "img.jpg", "e1", 10)
    return Journal(store, "tiler-metadata", "img", ref, "lambda", "test", **({"clock": clock} if clock else {}))


def test_a_phase_does_not_wait_for_its_write_and_the_final_save_lands_last():
    store = HeldStore(held=True)
    journal = _journal(store)
    journal.phase("fetch", 0, 10)
    journal.phase("convert", 0, 100)
    assert store.writes == []  # both phases returned while S3 had not taken their writes

    store.gate.set()
    final = journal.save(status=Status.DONE, progress={"phase": "done", "done": 5, "total": 5})
    phases = [r["progress"]["phase"] for r in store.records()]  # each write says what the record said when sent
    assert len(phases) == 3 and phases[0] in ("fetch", "convert") and phases[1:] == ["convert", "done"]
    assert store.records()[-1] == final and final["status"] == Status.DONE and final["finished_at"]
    assert store.writes[-1][0] == index_key(Status.DONE, "img")
    assert store.deleted == [index_key(Status.RUNNING, "img")]


def test_progress_is_a_heartbeat_at_most_every_few_seconds(clock):
    """A conversion reports progress many times a second; the record is written on a beat, and keeps being
    written as long as progress comes (it is what keeps the job's claim from being taken over)."""
    store = HeldStore()
    journal = _journal(store, clock.monotonic)
    for step in range(1, 81):  # 20 seconds of a conversion reporting every quarter of a second
        clock.advance(0.25)
        journal.progress(step, 80)
        journals_settled()
    beats = [datetime.fromisoformat(r["updated_at"]) for r in store.records()]
    assert beats and clock.now() - beats[-1] < timedelta(seconds=Journal.HEARTBEAT_SECONDS)
    assert all(
        later - earlier >= timedelta(seconds=Journal.HEARTBEAT_SECONDS) for earlier, later in zip(beats, beats[1:])
    )
    done = [r["progress"]["done"] for r in store.records()]
    assert done == sorted(set(done))  # each beat carries the progress as it is then


def test_a_failed_progress_write_does_not_fail_the_job():
    class FailingOnce(HeldStore):
        def put_json(self, bucket, key, document, **kwargs):
            if not self.writes and not getattr(self, "failed", False):
                self.failed = True
                raise OSError("S3 hiccup")
            return super().put_json(bucket, key, document, **kwargs)

    store = FailingOnce()
    journal = _journal(store)
    journal.phase("fetch")
    assert journal.save(status=Status.FAILED, error="bad input")["status"] == Status.FAILED
    assert store.writes[0][1]["status"] == Status.FAILED
