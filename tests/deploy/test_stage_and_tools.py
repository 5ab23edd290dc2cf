"""Stage settings, the diagnostic report, the command line and the image push script, without AWS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import diagnostics
from app.__main__ import main
from tooling.deploy.checks.function import MIN_MEMORY_MB
from tooling.deploy.stage import compact_json, load_stage, write_stage

REPO = Path(__file__).resolve().parents[2]


def test_stages_resolve_extends_and_name_the_function_as_zappa_does():
    production = load_stage("production", REPO / "zappa_settings.json")
    assert production.function_name == "tiler-production"
    assert production.settings["runtime"] == "python3.12", "inherited from dev"
    assert production.environment["SOURCE_BUCKET"] == "tiler-production-source"


def test_every_stage_deploys_on_a_new_account():
    """New accounts may create functions of at most 3,008 MB until the quota is raised (the README says how)."""
    document = json.loads((REPO / "zappa_settings.json").read_text())
    for name in document:
        settings = load_stage(name, REPO / "zappa_settings.json").settings
        assert MIN_MEMORY_MB <= settings["memory_size"] <= 3008, name
        assert settings.get("apigateway_version", "v1") == "v1", "the invoke path is proven for Zappa's REST API"


def test_writing_a_stage_keeps_the_file_readable_and_skips_no_op_writes(tmp_path):
    path = tmp_path / "zappa_settings.json"
    shutil.copy(REPO / "zappa_settings.json", path)
    stage = load_stage("dev", path)
    assert write_stage(stage, {"role_arn": "arn:aws:iam::1:role/x"})
    written = path.read_text()
    assert json.loads(written)["dev"]["role_arn"] == "arn:aws:iam::1:role/x"
    assert '"ephemeral_storage": {"Size": 10240},' in written and max(map(len, written.splitlines())) <= 124
    assert not write_stage(load_stage("dev", path), {"role_arn": "arn:aws:iam::1:role/x"})
    assert path.read_text() == written
    document = json.loads((REPO / "zappa_settings.json").read_text())
    assert json.loads(compact_json(document)) == document


def test_unknown_stages_are_one_line_errors(tmp_path, capsys):
    path = tmp_path / "zappa_settings.json"
    shutil.copy(REPO / "zappa_settings.json", path)
    assert main(["doctor", "staging", "--settings-file", str(path)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {path} has no stage 'staging' (stages: dev, production)"


def test_the_diagnostic_report_runs_exiftool_and_names_no_secret(monkeypatch):
    monkeypatch.setenv("DASHBOARD_PASSWORD", "hunter2")
    report = diagnostics.report()
    assert report["marker"] == diagnostics.MARKER
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed here (scripts/bootstrap.sh installs it)")
    assert report["exiftool"]["ok"] and report["exiftool"]["version"]
    assert "hunter2" not in json.dumps(report)
    assert diagnostics.exiftool_check("/nonexistent/exiftool")["ok"] is False


def run_push_script(tmp_path, pushed: bool = False) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The script with docker, aws, zappa and `python -m app provision` as stand-ins that record their arguments."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "push_batch_image.sh", project / "scripts")
    (project / "zappa_settings.json").write_text((REPO / "zappa_settings.json").read_text())
    tools, log = tmp_path / "bin", tmp_path / "calls.log"
    tools.mkdir()
    for name, body in {
        "aws": f'case "$*" in *describe-repositories*) echo {REPOSITORY};; *describe-images*) '
        f"exit {0 if pushed else 254};; *) echo secret;; esac",
        "docker": 'if [ "$1" = login ]; then cat >/dev/null; fi',
        "zappa": 'touch "$4"; test -e zappa_settings.py',
        "python": f'case "$*" in "-m app provision"*) ;; *) exec {sys.executable} "$@";; esac',
    }.items():
        record = f'case "$*" in "-c"*) ;; *) echo "{name} $*" >> {log};; esac'  # not the script's inline Python
        (tools / name).write_text(f"#!/bin/sh\n{record}\n{body}\n")
        (tools / name).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{tools}:{os.environ['PATH']}",
        "PY": str(tools / "python"),
        "ZAPPA": str(tools / "zappa"),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        ["bash", "scripts/push_batch_image.sh", "dev"], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert not (project / "zappa_settings.py").exists(), "the generated settings file is removed"
    return result, calls


REPOSITORY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tiler-dev"


def test_the_push_script_pushes_one_commit_tag_and_points_batch_at_it(tmp_path):
    result, calls = run_push_script(tmp_path)
    assert (
        calls[0] == "aws ecr describe-repositories --region eu-west-1 --repository-names tiler-dev --query "
        "repositories[0].repositoryUri --output text"
    )
    assert calls[1] == "zappa save-python-settings-file dev -o zappa_settings.py"
    assert set(calls[2:4]) == {
        "aws ecr get-login-password --region eu-west-1",  # one pipeline: either may log first
        "docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    }
    image = next(word for word in calls[5].split() if ":git-" in word)
    assert image.startswith(f"{REPOSITORY}:git-") and "latest" not in " ".join(calls)
    assert calls[5:] == [
        f"docker build --platform linux/amd64 --provenance=false -f batch_fallback/Dockerfile -t {image} .",
        f"docker push {image}",
        f"python -m app provision dev --image {image}",
    ]
    assert f"zappa deploy dev --docker-image-uri {image}" in result.stdout


def test_an_image_already_pushed_is_not_built_again(tmp_path):
    """Tags are immutable: a second push of the same commit would be refused, so the script reuses the image."""
    result, calls = run_push_script(tmp_path, pushed=True)
    assert not any(call.startswith(("docker build", "docker push")) for call in calls)
    assert calls[-1].startswith(f"python -m app provision dev --image {REPOSITORY}:git-")
    assert "already pushed" in result.stdout
