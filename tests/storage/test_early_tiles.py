"""Early tiles of an unfinished job are deleted only once their PUTs have settled: a PUT stopped on our side may
still land on S3's, after the delete."""

import threading
from pathlib import Path
from types import SimpleNamespace

from app.storage import publishing
from app.storage.native_uploads import Upload
from app.storage.publishing import EarlyTiles


class _Publisher:
    """Uploads that stay in flight until the test settles them; what happens, in order, in ``events``."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.uploads: list[Upload] = []
        self.buckets = {"tiles": "tiles"}
        self.storage = SimpleNamespace(delete_keys=lambda bucket, keys: events.append(f"delete {sorted(keys)}"))

    def upload(self, path: Path, destination: str, key: str, cache_control: str) -> Upload:
        def stop() -> None:  # the CRT's answer to a stopped request: the upload fails
            self.events.append(f"stop {key}")
            upload.set_exception(OSError("stopped"))

        upload = Upload(stop)
        self.uploads.append(upload)
        return upload


def test_discarding_waits_for_the_puts_in_flight_then_deletes_their_keys(monkeypatch):
    events: list[str] = []
    publisher = _Publisher(events)
    early = EarlyTiles(publisher)
    early.add(Path("t.jpg"), ("p_files/9/0_0.jpg", "p/0,0,512,512/512,512/0/default.jpg"))
    waiting, real_wait = threading.Event(), publishing.wait

    def watched_wait(futures, timeout=None):
        waiting.set()
        return real_wait(futures, timeout=timeout)

    monkeypatch.setattr(publishing, "wait", watched_wait)
    discarding = threading.Thread(target=early.discard, daemon=True)
    discarding.start()
    assert waiting.wait(10)  # discard is waiting for the uploads: nothing may be stopped or deleted yet
    assert events == []
    for upload in publisher.uploads:
        events.append("landed")
        upload.set_result(1)
    discarding.join(10)
    assert events == ["landed", "landed", "delete ['p/0,0,512,512/512,512/0/default.jpg', 'p_files/9/0_0.jpg']"]


def test_puts_still_running_after_the_patience_are_stopped_then_deleted():
    events: list[str] = []
    publisher = _Publisher(events)
    early = EarlyTiles(publisher)
    early.add(Path("t.jpg"), ("p_files/9/0_0.jpg",))
    early.discard(patience=0)
    assert events == ["stop p_files/9/0_0.jpg", "delete ['p_files/9/0_0.jpg']"]
