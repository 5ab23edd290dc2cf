"""A Zappa stage as deployment code sees it: effective settings, resource names, writing values back.

Names follow one rule, ``<project>-<stage>`` (Zappa's own function name) plus a
suffix, so provisioning, the doctor and tear-down agree without a state file;
bucket names also carry the account id because S3 names are global. What the
function must know (buckets, queue) is written into the stage's settings and
read back from there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import slugify

SETTINGS_FILE = Path("zappa_settings.json")
S3_EVENT_FUNCTION = "app.events.handle_s3_event"
SWEEP_FUNCTION = "app.sweep.run"
SWEEP_SCHEDULE = "rate(10 minutes)"
OWNER_TAG = "tiler:stage"  # on everything provisioning creates; tear-down deletes only what carries it


class StageError(Exception):
    """The settings file or the stage is missing or unusable."""


@dataclass(frozen=True)
class Stage:
    name: str
    settings: dict[str, Any]  # effective: "extends" resolved the way Zappa resolves it
    path: Path

    @property
    def region(self) -> str:
        return self.settings.get("aws_region") or "us-east-1"

    @property
    def function_name(self) -> str:
        """Zappa's name for the stage's function (zappa.cli: slugify(project_name + "-" + stage))."""
        return slugify.slugify(f"{self.settings.get('project_name', 'tiler')}-{self.name}")

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.settings.get("environment_variables") or {})

    @property
    def tags(self) -> dict[str, str]:
        return {**(self.settings.get("tags") or {}), OWNER_TAG: self.function_name}

    @property
    def timeout_seconds(self) -> int:
        return int(self.settings.get("timeout_seconds") or 30)  # Zappa's default

    def queue_events(self) -> list[dict[str, Any]]:
        """The event_source of every SQS event the stage wires to the function."""
        return [
            event["event_source"]
            for event in self.settings.get("events") or []
            if str(event.get("event_source", {}).get("arn", "")).startswith("arn:aws:sqs:")
        ]

    def s3_events(self) -> list[dict[str, Any]]:
        """The event_source of every S3 event the stage wires to the function."""
        return [
            event["event_source"]
            for event in self.settings.get("events") or []
            if str(event.get("event_source", {}).get("arn", "")).startswith("arn:aws:s3:::")
        ]


@dataclass(frozen=True)
class Names:
    """Every resource name of one stage; the ones the function uses are in its settings, the rest derived."""

    function: str
    account: str
    region: str
    source_bucket: str
    tiles_bucket: str
    metadata_bucket: str
    deploy_bucket: str
    job_queue: str
    job_definition: str
    distribution_id: str = ""  # the CloudFront distribution in front of the tiles; none with a public bucket

    @property
    def buckets(self) -> tuple[str, str, str]:
        return self.source_bucket, self.tiles_bucket, self.metadata_bucket

    @property
    def event_queue(self) -> str:
        return f"{self.function}-events"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.function}-events-dead"

    @property
    def alarm_topic(self) -> str:
        return f"{self.function}-alarms"

    def queue_arn(self, queue: str) -> str:
        return self.arn("sqs", queue)

    @property
    def lambda_role(self) -> str:
        return f"{self.function}-lambda"

    @property
    def job_role(self) -> str:
        return f"{self.function}-batch-job"

    @property
    def execution_role(self) -> str:
        return f"{self.function}-batch-execution"

    @property
    def compute_environment(self) -> str:
        return f"{self.function}-fargate"

    @property
    def repository(self) -> str:
        return self.function

    @property
    def repository_uri(self) -> str:
        return f"{self.account}.dkr.ecr.{self.region}.amazonaws.com/{self.repository}"

    @property
    def function_arn(self) -> str:
        return self.arn("lambda", f"function:{self.function}")

    @property
    def tiles_domain(self) -> str:
        """The tiles bucket's regional endpoint: CloudFront's origin, and the public URL of a public bucket."""
        return f"{self.tiles_bucket}.s3.{self.region}.amazonaws.com"

    @property
    def public_base_url(self) -> str:
        return f"https://{self.tiles_domain}"

    @property
    def distribution_arn(self) -> str:
        return f"arn:aws:cloudfront::{self.account}:distribution/{self.distribution_id}"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"

    def role_arn(self, role: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{role}"


def load_stage(name: str, path: Path = SETTINGS_FILE) -> Stage:
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise StageError(f"cannot read {path}: {error}") from None
    if name not in document:
        raise StageError(f"{path} has no stage {name!r} (stages: {', '.join(document)})")
    return Stage(name, _effective(document, name, []), Path(path))


def derived_names(stage: Stage, account: str, **buckets: str | None) -> Names:
    """The names provisioning uses: ``<function>-<kind>-<account>`` unless a bucket name is given."""
    function = stage.function_name
    chosen = {
        kind: buckets.get(kind) or f"{function}-{kind.split('_')[0]}-{account}"
        for kind in ("source_bucket", "tiles_bucket", "metadata_bucket")
    }
    deploy = stage.settings.get("s3_bucket") or ""
    if not deploy or "CHANGE-ME" in deploy:
        deploy = f"{function}-deploys-{account}"
    names = Names(
        function,
        account,
        stage.region,
        **chosen,
        deploy_bucket=deploy,
        job_queue=function,
        job_definition=f"{function}-batch",
    )
    for bucket in (*names.buckets, names.deploy_bucket):
        if not 3 <= len(bucket) <= 63:
            raise StageError(f"bucket name {bucket!r} is not 3-63 characters: choose names with --*-bucket")
    return names


def stage_names(stage: Stage, account: str) -> Names:
    """The names a deployed stage uses, as its settings record them (what the function will see)."""
    env = stage.environment
    names = derived_names(stage, account)
    return replace(
        names,
        source_bucket=env.get("SOURCE_BUCKET", ""),
        tiles_bucket=env.get("TILES_BUCKET", ""),
        metadata_bucket=env.get("METADATA_BUCKET", ""),
        deploy_bucket=stage.settings.get("s3_bucket", ""),
        job_queue=env.get("BATCH_JOB_QUEUE", ""),
        job_definition=env.get("BATCH_JOB_DEFINITION", ""),
        distribution_id=env.get("CDN_DISTRIBUTION_ID", ""),
    )


def write_stage(stage: Stage, values: dict[str, Any], drop: tuple[str, ...] = ()) -> bool:
    """Set ``values`` in the stage's own section of the settings file; False when nothing changed."""
    document = json.loads(stage.path.read_text())
    section = document[stage.name]
    before = json.dumps(section, sort_keys=True)
    section.update(values)
    for key in drop:
        section.pop(key, None)
    if json.dumps(section, sort_keys=True) == before:
        return False
    stage.path.write_text(compact_json(document) + "\n")
    return True


def compact_json(value: Any, indent: int = 0, lead: int = 0, width: int = 124) -> str:
    """JSON as people write settings files: flat objects and lists on one line when they fit, long flat lists packed.

    ``lead`` is how much of the line the key already takes.
    """
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list):
        return flat
    children = list(value.values()) if isinstance(value, dict) else value
    nested = any(isinstance(child, dict | list) for child in children)
    if indent and not nested and indent + lead + len(flat) <= width:
        return flat
    pad, end = " " * (indent + 4), " " * indent
    if isinstance(value, dict):
        items = [
            f"{pad}{json.dumps(k)}: {compact_json(v, indent + 4, len(json.dumps(k)) + 2, width)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + end + "}" if items else "{}"
    if not nested and value:
        lines = _packed([json.dumps(v, ensure_ascii=False) for v in value], pad, width)
        return "[\n" + ",\n".join(lines) + "\n" + end + "]"
    items = [pad + compact_json(v, indent + 4, 0, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + end + "]" if items else "[]"


def _packed(items: list[str], pad: str, width: int) -> list[str]:
    lines = [pad + items[0]]
    for item in items[1:]:
        if len(lines[-1]) + 2 + len(item) + 1 <= width:
            lines[-1] += ", " + item
        else:
            lines.append(pad + item)
    return lines


def _effective(document: dict[str, Any], name: str, seen: list[str]) -> dict[str, Any]:
    if name in seen:
        raise StageError(f"circular 'extends' through {name!r}")
    if name not in document:
        raise StageError(f"stage {seen[-1]!r} extends {name!r}, which is not defined")
    own = dict(document[name])
    parent = own.get("extends")
    return {**_effective(document, parent, [*seen, name]), **own} if parent else own
