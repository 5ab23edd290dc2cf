#!/usr/bin/env bash
# Set up everything the demo, tests and benchmark need, idempotently:
#   scripts/bootstrap.sh [--browser | --bench]
# Installs Debian packages that pip cannot provide (exiftool; Chromium with --browser; OpenJPEG's
# opj_decompress, the tests' and the benchmark's reference JPEG 2000 decoder, with --browser or --bench; Node.js and
# npm with --bench, for the benchmark's peer, iiif-processor, which the benchmark installs itself with npm),
# creates the virtualenv and installs the pinned requirements when they change.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
packages=()
command -v exiftool >/dev/null 2>&1 || packages+=(libimage-exiftool-perl)
if [[ "${1:-}" == "--browser" ]]; then
  command -v chromium >/dev/null 2>&1 || packages+=(chromium)
fi
if [[ "${1:-}" == "--browser" || "${1:-}" == "--bench" ]]; then
  command -v opj_decompress >/dev/null 2>&1 || packages+=(libopenjp2-tools)
fi
if [[ "${1:-}" == "--bench" ]]; then
  command -v node >/dev/null 2>&1 || packages+=(nodejs)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
fi

if ((${#packages[@]})); then
  if [[ $(id -u) -eq 0 ]]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo); else
    echo "Missing system packages. Please run:  sudo apt-get install -y ${packages[*]}" >&2
    exit 1
  fi
  echo "Installing ${packages[*]} from Debian's packages ..." >&2
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "Creating virtualenv $VENV ..." >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.requirements-$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "Installing Python packages into $VENV ..." >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 \
    | { grep -v "is neither a file nor a directory" || true; }
  rm -f "$VENV"/.requirements-* && touch "$stamp"
fi
