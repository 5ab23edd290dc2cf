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
from app.deploy.stage import compact_json, load_stage, write_stage

REPO = Path(__file__).resolve().parents[2]


def test_stages_resolve_extends_and_name_the_function_as_zappa_does():
    production = load_stage("production", REPO / "zappa_settings.json")
    assert production.function_name == "tiler-production"
    assert production.settings["runtime"] == "python3.12", "inherited from dev"
    assert production.environment["SOURCE_BUCKET"] == "tiler-production-source"
    assert production.intended_filter() == {}


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


def test_the_push_script_pushes_where_the_job_definition_pulls_from(tmp_path):
    """docker, aws and zappa are stand-ins that record their arguments; the script's logic is the real one."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "push_batch_image.sh", project / "scripts")
    settings = json.loads((REPO / "zappa_settings.json").read_text())
    settings["dev"]["environment_variables"]["BATCH_JOB_DEFINITION"] = "tiler-dev-batch"
    (project / "zappa_settings.json").write_text(json.dumps(settings))
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tiler-dev:latest"
    tools, log = tmp_path / "bin", tmp_path / "calls.log"
    tools.mkdir()
    for name, body in {"aws": f'case "$*" in *describe-job-definitions*) echo {image};; *) echo secret;; esac',
                       "docker": 'if [ "$1" = login ]; then cat >/dev/null; fi',
                       "zappa": 'touch "$4"; test -e zappa_settings.py'}.items():
        (tools / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{body}\n')
        (tools / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "PY": sys.executable, "ZAPPA": str(tools / "zappa"),
           "PYTHONPATH": str(REPO)}
    result = subprocess.run(["bash", "scripts/push_batch_image.sh", "dev"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("aws batch describe-job-definitions --region eu-west-1 --job-definition-name "
                               "tiler-dev-batch --status ACTIVE")
    assert calls[1] == "zappa save-python-settings-file dev -o zappa_settings.py"
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert set(calls[2:4]) == {"aws ecr get-login-password --region eu-west-1",  # one pipeline: either may log first
                               f"docker login --username AWS --password-stdin {registry}"}
    pinned = next(word for word in calls[4].split() if ":git-" in word)
    assert calls[4] == (f"docker build --platform linux/amd64 --provenance=false -f batch_fallback/Dockerfile "
                        f"-t {image} -t {pinned} .")
    assert calls[5:] == [f"docker push {image}", f"docker push {pinned}"]
    assert not (project / "zappa_settings.py").exists(), "the generated settings file is removed"
    assert f"zappa deploy dev --docker-image-uri {pinned}" in result.stdout
