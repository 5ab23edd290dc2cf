"""CloudWatch metrics as embedded metric format (EMF) lines in the function's log: no API call, no permission.

Lambda's log pipeline turns each such JSON line into metric values, in the
``Tiler`` namespace with the source bucket as the one dimension (unique to a
stage): ``Done``, ``Failed``, ``Retried`` (a delivery that failed and will come
back) and ``SecondsPerMegapixel`` of each conversion. ``provision`` puts the
alarms on them. Only the invocation that finished a job reports it, so a
duplicate delivery of a finished job counts nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from app.model import Status
from config import Settings

NAMESPACE = "Tiler"
DIMENSION = "SourceBucket"
UNITS = {"Done": "Count", "Failed": "Count", "Retried": "Count", "SecondsPerMegapixel": "Seconds"}


class Metrics:
    """Writes EMF lines for one invocation (``write``: the log; None where no one reads them, as locally)."""

    def __init__(self, settings: Settings, owner: str, write: Callable[[str], Any] | None) -> None:
        self.bucket, self.owner, self.write = settings.source_bucket, owner, write

    def job_finished(self, record: dict[str, Any], _settings: Settings, _key: str) -> None:
        """A listener of ``jobs.handle``: counts a final record this invocation wrote."""
        owner = str(record.get("owner"))
        if owner != self.owner and not owner.startswith(f"{self.owner}/"):  # a job's owner is the invocation's/JOB
            return
        if record["status"] == Status.FAILED:
            self.emit({"Failed": 1}, image=record["id"], error=record.get("error"))
        elif record["status"] == Status.DONE:
            values = {"Done": 1}
            facts, total = record.get("facts") or {}, (record.get("timings") or {}).get("total")
            megapixels = facts.get("width", 0) * facts.get("height", 0) / 1e6
            if total and megapixels:
                values["SecondsPerMegapixel"] = round(total / megapixels, 4)
            self.emit(values, image=record["id"], route=record.get("route"))

    def retried(self, key: str, error: Exception) -> None:
        self.emit({"Retried": 1}, key=key, error=f"{type(error).__name__}: {error}"[:300])

    def emit(self, values: dict[str, float], **context: Any) -> None:
        if self.write is None:
            return
        line = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [[DIMENSION]],
                        "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in values],
                    }
                ],
            },
            DIMENSION: self.bucket,
            **values,
            **{k: v for k, v in context.items() if v is not None},
        }
        self.write(json.dumps(line, default=str))
