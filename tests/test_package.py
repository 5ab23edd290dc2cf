"""The Lambda deploy package: ``zappa package dev`` from a runtime-only virtualenv, then run the way Lambda runs it.

Built by ``make package`` (scripts/package.py): a virtualenv of requirements.txt only (no moto, pytest or
validators) on the interpreter of the stage's ``runtime``, cached in .venv-deploy/, so only the first run pays for
it. ``zappa package`` needs no AWS account: it never builds a boto session for this command, and
``use_precompiled_packages`` is off, so it makes no lookups either. The zip is then unpacked into a clean folder
and Zappa's own ``handler.lambda_handler`` (the function Lambda calls) is given a real S3 event from the embedded
S3 endpoint, in the SQS batch the stage's event source mapping would deliver (Zappa routes it by the queue's
ARN), by a plain interpreter that sees nothing but that folder and the standard library, with no exiftool on its
PATH (the zip runtime has no Perl).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import time
import zipfile
from pathlib import Path

import boto3
import pytest
import pyvips

from app.ids import image_id_for
from config import Settings
from tooling.local_s3 import LocalS3
from tooling.local_stack import LocalStack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]
STAGE = "dev"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Newest glibc a runtime's OS offers: python3.9-3.11 run on Amazon Linux 2, python3.12+ on Amazon Linux 2023.
RUNTIME_GLIBC = {
    "python3.9": (2, 26),
    "python3.10": (2, 26),
    "python3.11": (2, 26),
    "python3.12": (2, 34),
    "python3.13": (2, 34),
    "python3.14": (2, 34),
}
DEV_ONLY = {"moto", "pytest", "_pytest", "iiif_validator", "pytest_timeout"}
SOURCE_KEY = "uploads/package check.png"

DRIVER = """
import importlib.util, json, sys
leaks = [name for name in ("moto", "pytest", "iiif_validator") if importlib.util.find_spec(name)]
import handler  # Zappa's handler, at the package root as in /var/task

class Context:  # what Lambda passes
    aws_request_id = "package-check"
    function_name = "tiler-dev"
    memory_limit_in_mb = 3008
    def get_remaining_time_in_millis(self):
        return 600_000

result = handler.lambda_handler(json.load(sys.stdin), Context())
import boto3, importlib, pkgutil, pyvips, app
unimportable = {}  # every runtime module must import from the package alone: no dev dependency, no tooling
for module in pkgutil.walk_packages(app.__path__, "app."):
    try:
        importlib.import_module(module.name)
    except Exception as error:
        unimportable[module.name] = repr(error)
json.dump({"result": result, "leaks": leaks, "unimportable": unimportable,
           "files": {m.__name__: m.__file__ for m in (handler, boto3, pyvips)}}, open(sys.argv[1], "w"))
"""


@pytest.fixture(scope="module")
def stage() -> dict:
    return json.loads((REPO / "zappa_settings.json").read_text())[STAGE]


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """What `make package STAGE=dev OUT=...` builds, from a clean environment with no AWS account."""
    output = tmp_path_factory.mktemp("zappa") / "pkg.zip"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON")) and k != "VIRTUAL_ENV"}
    started = time.perf_counter()
    built = subprocess.run(
        ["make", "--no-print-directory", "package", f"STAGE={STAGE}", f"OUT={output}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert f"Next: zappa deploy {STAGE} --zip {output}" in built.stdout
    print(f"make package STAGE={STAGE}: {time.perf_counter() - started:.1f}s")
    return output


@pytest.fixture(scope="module")
def unpacked(package, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("var-task")
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder


def test_package_fits_lambda_and_holds_only_runtime_code(package):
    with zipfile.ZipFile(package) as archive:
        entries = archive.infolist()
    unzipped = sum(entry.file_size for entry in entries)
    print(
        f"package: {package.stat().st_size / 2**20:.1f} MiB zipped, {unzipped / 2**20:.1f} MiB unzipped "
        f"({len(entries)} files; Lambda allows {LAMBDA_UNZIPPED_LIMIT / 2**20:.0f} MiB)"
    )
    assert unzipped < LAMBDA_UNZIPPED_LIMIT
    names = {entry.filename for entry in entries}
    tops = {name.split("/")[0] for name in names}
    assert not tops & DEV_ONLY
    assert not tops & {"tests", "tooling", "bench", "scripts", "batch_fallback", ".venv", ".git"}
    assert not any(top.startswith(".venv") for top in tops)
    assert {"handler.py", "zappa_settings.py", "config.py", "app/jobs.py", "app/events.py", "app/web/wsgi.py"} <= names
    assert "zappa_settings.json" not in names and "requirements-dev.txt" not in names


def test_native_libraries_load_on_the_runtimes_os(unpacked, stage):
    newest = RUNTIME_GLIBC[stage["runtime"]]
    libraries = [path for path in unpacked.rglob("*.so*") if path.is_file()]
    needs = {str(path.relative_to(unpacked)): _glibc_needed(path) for path in libraries}
    too_new = {name: version for name, version in needs.items() if version > newest}
    assert needs and not too_new, f"{stage['runtime']} offers glibc {newest}; these need more: {too_new}"


def test_a_plain_interpreter_sees_only_the_package(unpacked, stage):
    show_path = "import json, sys; print(json.dumps(sys.path))"
    answer = subprocess.run(
        [_interpreter(stage["runtime"]), "-S", "-c", show_path],
        env=_lambda_env(unpacked),
        cwd=unpacked,
        capture_output=True,
        text=True,
        check=True,
    )
    stdlib_or_package = [entry for entry in json.loads(answer.stdout) if entry]
    assert stdlib_or_package[0] == str(unpacked)
    assert not [entry for entry in stdlib_or_package if "site-packages" in entry or ".venv" in entry]


BYTECODE_CHECK = """
import importlib.util, json, sys
from pathlib import Path
root, unusable = Path(sys.argv[1]), {}
for source in root.rglob("*.py"):
    if "__pycache__" in source.parts:  # Zappa's __init__.py in bytecode folders: never imported
        continue
    cached = Path(importlib.util.cache_from_source(str(source)))
    data = cached.read_bytes() if cached.exists() else b""
    flags = int.from_bytes(data[4:8], "little")
    if not data:
        unusable[str(source.relative_to(root))] = "no bytecode"
    elif not flags & 1:
        unusable[str(source.relative_to(root))] = "timestamp-based"
    elif data[8:16] != importlib.util.source_hash(source.read_bytes()):
        unusable[str(source.relative_to(root))] = "compiled from another source"
print(json.dumps(unusable))
"""


def test_every_module_carries_bytecode_that_lambda_will_use(package, unpacked, stage):
    """Zappa dates every zip entry 1980-01-01 and /var/task is read-only, so a timestamp-based .pyc never matches
    its source there and each cold start compiles every module again: the package ships hash-based bytecode, for
    the runtime's Python, of the very sources beside it."""
    with zipfile.ZipFile(package) as archive:
        ours = [entry for entry in archive.infolist() if re.fullmatch(r"app/[\w/]+\.py", entry.filename)]
    assert {entry.date_time[0] for entry in ours} == {1980}  # why timestamps cannot work (copied files, as pip's)
    answer = subprocess.run(
        [_interpreter(stage["runtime"]), "-S", "-c", BYTECODE_CHECK, str(unpacked)],
        env=_lambda_env(unpacked),
        capture_output=True,
        text=True,
        check=True,
    )
    unusable = json.loads(answer.stdout)
    assert unusable == {}, f"{len(unusable)} modules would be compiled at each cold start: {list(unusable)[:20]}"


def test_an_s3_event_is_converted_by_the_package(unpacked, stage, tmp_path):
    settings = Settings.from_env(stage["environment_variables"])
    with LocalS3() as s3, pytest.MonkeyPatch.context() as patch:
        for name, value in s3.environment().items():
            patch.setenv(name, value)
        stack = LocalStack(settings)
        stack.provision()
        _upload_png(boto3.client("s3"), settings.source_bucket, SOURCE_KEY)
        event = _as_the_mapping_delivers(_delivered_event(stack), stage)
        report = tmp_path / "report.json"
        run = subprocess.run(
            [_interpreter(stage["runtime"]), "-S", "-c", DRIVER, str(report)],
            input=json.dumps(event),
            cwd=unpacked,
            capture_output=True,
            text=True,
            timeout=300,
            env={**_lambda_env(unpacked), **s3.environment(), "TMPDIR": str(tmp_path)},
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        outcome = json.loads(report.read_text())
        image_id = image_id_for(SOURCE_KEY)
        record = _read_json(settings.metadata_bucket, f"jobs/{image_id}.json")
        info = _read_json(settings.tiles_bucket, f"{image_id}/info.json")
    assert outcome["leaks"] == [] and outcome["unimportable"] == {}
    assert all(path.startswith(str(unpacked)) for path in outcome["files"].values()), outcome["files"]
    assert outcome["result"] == {"batchItemFailures": []}
    assert record["status"] == "done" and record["source"]["key"] == SOURCE_KEY
    assert info["id"] == f"{settings.public_base_url}/{image_id}" and info["width"] == 700
    print(f"converted by the package; metadata: {record.get('metadata_partial') or 'complete'}")


# Helpers ----------------------------------------------------------------------------------------------------
def _interpreter(runtime: str) -> str:
    """The runtime's Python, found as scripts/package.py finds it (the 'plain python' of the checks)."""
    spec = importlib.util.spec_from_file_location("package_script", REPO / "scripts" / "package.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.interpreter(runtime)


def _lambda_env(task_root: Path) -> dict[str, str]:
    """As little as Lambda gives: the package on the path, no venv, no user site, no exiftool."""
    empty_bin = task_root.parent / f"{task_root.name}-bin"
    empty_bin.mkdir(exist_ok=True)
    return {
        "PYTHONPATH": str(task_root),
        "PYTHONNOUSERSITE": "1",
        "PATH": str(empty_bin),
        "LANG": "C.UTF-8",
        "HOME": str(task_root.parent),
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "tiler-dev",
    }


def _glibc_needed(path: Path) -> tuple[int, ...]:
    versions = re.findall(rb"GLIBC_(\d+)\.(\d+)", path.read_bytes())
    return max(((int(major), int(minor)) for major, minor in versions), default=(0, 0))


def _upload_png(s3, bucket: str, key: str) -> None:
    x, y = pyvips.Image.xyz(700, 500)[0], pyvips.Image.xyz(700, 500)[1]
    image = (x * 255 / 700).bandjoin([y * 255 / 500, (x + y) * 255 / 1200]).cast("uchar").copy(interpretation="srgb")
    s3.put_object(Bucket=bucket, Key=key, Body=image.write_to_buffer(".png"))


def _delivered_event(stack: LocalStack) -> dict:
    """The event the endpoint sent for the upload: the body Lambda receives from S3."""
    for _ in range(20):
        for message in stack.sqs.receive_message(
            QueueUrl=stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            body = json.loads(message["Body"])
            if "Records" in body:
                return body
    pytest.fail("the S3 endpoint sent no ObjectCreated event")


def _as_the_mapping_delivers(s3_event: dict, stage: dict) -> dict:
    """The SQS event Lambda's event source mapping sends for the stage's queue, the S3 event as a message body."""
    (queue_arn,) = [
        event["event_source"]["arn"]
        for event in stage["events"]
        if event.get("event_source", {}).get("arn", "").startswith("arn:aws:sqs:")
    ]
    message = {
        "messageId": "package-check-1",
        "receiptHandle": "package-check",
        "body": json.dumps(s3_event),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }
    return {"Records": [message]}


def _read_json(bucket: str, key: str) -> dict:
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def test_jpeg_2000_and_pdf_decode_in_the_package(unpacked, stage, tmp_path):
    """The trimmed imagecodecs (JPEG 2000 and JPEG) and PDFium load and decode under the runtime's Python."""
    import imagecodecs

    x = pyvips.Image.xyz(96, 64)[0]
    pixels = (x * 2).bandjoin([x, x * 0 + 30]).cast("uchar").numpy()
    (tmp_path / "master.jp2").write_bytes(imagecodecs.jpeg2k_encode(pixels, reversible=True))
    (tmp_path / "scan.pdf").write_bytes(
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n"
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n3 0 obj\n<< /Type /Page "
        b"/Parent 2 0 R /MediaBox [0 0 72 36] >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n"
    )
    script = (
        "import sys; from pathlib import Path; from app.pipeline.inspect import open_image\n"
        "for name in sys.argv[1:]:\n"
        "    image, facts = open_image(Path(name), ('jp2k', 'pdf'), 10**9, pdf_dpi=144)\n"
        "    print(facts.format, image.width, image.height, [int(v) for v in image(40, 20)])"
    )
    run = subprocess.run(
        [_interpreter(stage["runtime"]), "-S", "-c", script, str(tmp_path / "master.jp2"), str(tmp_path / "scan.pdf")],
        env=_lambda_env(unpacked),
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split("\n")[:2] == ["jp2k 96 64 [80, 40, 30]", "pdf 144 72 [255, 255, 255]"]
