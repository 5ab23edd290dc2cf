"""Build a stage's Lambda zip from the runtime dependencies only:  make package STAGE=dev OUT=dist/tiler-dev.zip

``zappa package`` packs the virtualenv it runs from, so run from the README's
.venv it would pack the test tools too (over 500 MB unzipped, twice Lambda's
250 MB). This builds a virtualenv of requirements.txt alone, on the Python
version of the stage's ``runtime`` (the native wheels must match it), cached in
.venv-deploy/ under a hash of both, and runs ``zappa package`` from it. Deploy
the result with ``zappa deploy STAGE --zip OUT`` (later ``zappa update STAGE --zip OUT``).
The virtualenv keeps only the imagecodecs codecs the pipeline uses (JPEG 2000,
and JPEG for the stitched sizes), so the zip stays under Lambda's 250 MB. Standard library only: it runs before
any virtualenv exists.

Every module in the zip carries hash-based bytecode for the runtime's Python. Zappa dates every zip entry
1980-01-01, so the timestamp-based ``.pyc`` pip writes by default never match their sources on Lambda, and
/var/task is read-only: each cold start would compile every module it imports again (boto3, Flask, pyvips, the
app), and throw the result away. A hash-based ``.pyc`` is checked against its source's content instead, so it
holds whatever the dates, and a source that changed is still compiled afresh, never run stale.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# imagecodecs ships some eighty codecs (about 80 MB with their libraries); the pipeline uses JPEG 2000 (app/pipeline/
# jp2.py) and JPEG (app/pipeline/jpeg.py) alone (its codecs load on first use), so the Lambda zip keeps only these,
# and stays under Lambda's 250 MB.
IMAGECODECS_KEEP = (
    "__init__.py",
    "imagecodecs.py",
    "py.typed",
    "licenses",
    "_jpeg2k.",
    "_jpeg8.",
    "_shared.",
    "_shared_cython.",
    "libopenjp2-",
    "liblcms2-",
    "libjpeg-",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("stage")
    parser.add_argument("output", type=Path)
    parser.add_argument("--settings-file", type=Path, default=REPO / "zappa_settings.json")
    args = parser.parse_args(argv)
    runtime = runtime_of(args.settings_file, args.stage)
    venv = runtime_venv(runtime)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # zappa package makes no AWS call, but builds a session
    built = subprocess.run(
        [str(venv / "bin" / "zappa"), "package", args.stage, "-o", str(args.output.resolve())], cwd=REPO, env=env
    )
    if built.returncode == 0:
        add_bytecode(args.output, venv / "bin" / "python")
        print(
            f"Next: zappa deploy {args.stage} --zip {args.output}  (later: zappa update {args.stage} --zip "
            f"{args.output})"
        )
    return built.returncode


def add_bytecode(archive: Path, python: Path) -> None:
    """Add checked-hash bytecode, compiled by the runtime's ``python``, for each module of ``archive`` that has
    none: the project's own (zappa_settings.json keeps the working tree's ``__pycache__``, made by another Python
    or another way, out of the zip), single-file modules and the ``__init__.py`` files Zappa adds."""
    tag = subprocess.run(
        [str(python), "-c", "import sys; print(sys.implementation.cache_tag)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
    # (Zappa puts an __init__.py even in __pycache__ folders, which nothing imports)
    modules = (name for name in names if name.endswith(".py") and "__pycache__/" not in name)
    sources = [name for name in modules if _cached(name, tag) not in names]
    with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zipped:
        zipped.extractall(scratch, sources)
        subprocess.run(
            [str(python), "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", scratch], check=True
        )
        for name in sources:
            zipped.write(Path(scratch) / _cached(name, tag), _cached(name, tag))


def _cached(source: str, tag: str) -> str:
    """Where Python looks for the bytecode of ``source`` (a path inside the zip)."""
    folder, _, file = source.rpartition("/")
    return f"{folder + '/' if folder else ''}__pycache__/{file.removesuffix('.py')}.{tag}.pyc"


def runtime_of(settings_file: Path, stage: str) -> str:
    """The stage's ``runtime``, following ``extends`` as Zappa does."""
    document = json.loads(settings_file.read_text())
    while stage:
        section = document[stage]
        if "runtime" in section:
            return section["runtime"]
        stage = section.get("extends")
    sys.exit(f"error: the stage sets no runtime in {settings_file}")


def runtime_venv(runtime: str) -> Path:
    """A virtualenv of requirements.txt on the runtime's Python, built once per requirements and interpreter."""
    python = interpreter(runtime)
    version = subprocess.run([python, "-VV"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256(
        (REPO / "requirements.txt").read_bytes() + version.encode() + Path(__file__).read_bytes()
    ).hexdigest()[:12]
    venv = REPO / ".venv-deploy" / f"{runtime}-{key}"
    if not (venv / ".complete").exists():
        for old in venv.parent.glob("python*"):  # earlier requirements: not needed any more
            shutil.rmtree(old)
        print(f"Building {venv.relative_to(REPO)} (requirements.txt on {python}) ...", file=sys.stderr)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                str(REPO / "requirements.txt"),
            ],
            check=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},  # pip then byte-compiles checked-hash .pyc
        )
        trim(venv)
        (venv / ".complete").touch()
    return venv


def trim(venv: Path) -> None:
    """Remove the imagecodecs codecs the pipeline never loads (see IMAGECODECS_KEEP)."""
    for folder in venv.glob("lib/python*/site-packages/imagecodecs*"):
        if folder.is_dir() and not folder.name.endswith(".dist-info"):
            for entry in folder.iterdir():
                if not entry.name.startswith(IMAGECODECS_KEEP):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def interpreter(runtime: str) -> str:
    """An interpreter of the runtime's Python version: on the PATH, from pyenv, or the system's."""
    version = runtime.removeprefix("python")
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [
        shutil.which(f"python{version}"),
        *sorted(glob.glob(f"{pyenv}/{version}*/bin/python{version}"), reverse=True),
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    for candidate in (c for c in candidates if c and os.path.exists(c)):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    sys.exit(
        f"error: no Python {version} interpreter for the runtime {runtime}: install python{version} "
        "(or pyenv install " + version + ")"
    )


if __name__ == "__main__":
    sys.exit(main())
