"""Run one child process and measure it: wall-clock seconds and peak RSS.

Peak RSS comes from ``os.wait4`` on the child's pid, i.e. the kernel's
``ru_maxrss`` for *that* process (KiB on Linux). ``getrusage(RUSAGE_CHILDREN)``
would not do: it is a running maximum over every child the benchmark has ever
reaped, so one big reference run would mask every later candidate run.

For processes the child itself reaps (the candidate's exiftool helper) the
kernel folds their ``ru_maxrss`` in as a *maximum*, never a sum, so the
number is the Python process's own peak unless a helper was bigger than it.

Output goes to log files, not pipes: waiting on a child that fills a pipe
nobody reads would deadlock, and the logs are worth keeping for diagnosis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessStats:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float  # user and system time of the process and the children it waited for (exiftool ...)
    exit_code: int
    stdout: str
    stderr: str


class RunFailed(RuntimeError):
    """A measured child exited non-zero: the benchmark's numbers would be meaningless."""


def run_measured(
    cmd: list[str], log_dir: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> ProcessStats:
    """Run ``cmd`` to completion; raise ``RunFailed`` (with its output) if it fails."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / "stdout.log", log_dir / "stderr.log"
    flush_writeback()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it is reaped, or it would wait again
    stats = ProcessStats(
        seconds=seconds,
        peak_rss_mb=usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        exit_code=proc.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )
    if stats.exit_code != 0:
        raise RunFailed(
            f"exit code {stats.exit_code}: {' '.join(cmd)}\n"
            f"--- stderr (last lines) ---\n{_tail(stats.stderr)}\n"
            f"--- stdout (last lines) ---\n{_tail(stats.stdout)}"
        )
    return stats


def fake_aws_env(**settings: str) -> dict[str, str]:
    """This process's environment for a child that talks to a local S3 endpoint: fake credentials and none of a
    developer's AWS configuration (variables, config files, instance metadata), plus ``settings``."""
    from tooling.local_s3 import FAKE_CREDENTIALS

    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        FAKE_CREDENTIALS,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        **settings,
    )
    return env


def flush_writeback() -> None:
    """Write out the previous run's dirty pages now, so their I/O is not billed to the next run."""
    if hasattr(os, "sync"):
        os.sync()


def _tail(text: str, lines: int = 15) -> str:
    # tqdm redraws with carriage returns; keep only the last state of each line
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.strip().splitlines()[-lines:])
