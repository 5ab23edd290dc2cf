"""The job record's writes: progress in the background, in order, and the job's own saves last."""
import threading
import time

from app.model import SourceRef, Status
from app.records import Journal, index_key, record_key


class SlowStore:
    """Stands in for S3Storage: every write takes a while, and the order of writes is kept."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.writes: list[tuple[str, dict]] = []
        self.deleted: list[str] = []
        self._lock = threading.Lock()

    def put_json(self, bucket: str, key: str, document: dict, **_: object) -> str:
        time.sleep(self.seconds)
        with self._lock:
            self.writes.append((key, document))
        return '"etag"'

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            self.deleted.append(key)


def _journal(store: SlowStore) -> Journal:
    return Journal(store, "tiler-metadata", "img", SourceRef("src", "img.jpg", "e1", 10), "lambda", "test")


def test_a_phase_does_not_wait_for_its_write_and_the_final_save_lands_last():
    store = SlowStore(0.2)
    journal = _journal(store)
    started = time.monotonic()
    journal.phase("fetch", 0, 10)
    journal.phase("convert", 0, 100)
    assert time.monotonic() - started < 0.1  # nothing waited for S3

    final = journal.save(status=Status.DONE, progress={"phase": "done", "done": 5, "total": 5})
    records = [document for key, document in store.writes if key == record_key("img")]
    phases = [r["progress"]["phase"] for r in records]  # each write says what the record said when it was sent
    assert len(phases) == 3 and phases[0] in ("fetch", "convert") and phases[1:] == ["convert", "done"]
    assert records[-1] == final and final["status"] == Status.DONE and final["finished_at"]
    assert store.writes[-1][0] == index_key(Status.DONE, "img")
    assert store.deleted == [index_key(Status.RUNNING, "img")]


def test_a_failed_progress_write_does_not_fail_the_job():
    class FailingOnce(SlowStore):
        def put_json(self, bucket, key, document, **kwargs):
            if not self.writes and not getattr(self, "failed", False):
                self.failed = True
                raise OSError("S3 hiccup")
            return super().put_json(bucket, key, document, **kwargs)

    store = FailingOnce(0)
    journal = _journal(store)
    journal.phase("fetch")
    assert journal.save(status=Status.FAILED, error="bad input")["status"] == Status.FAILED
    assert store.writes[0][1]["status"] == Status.FAILED
