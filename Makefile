# The two commands that set up a fresh machine and use it (README.md):
#   make demo   start the embedded engine, ingest the shipped sample, search it, stop
#   make test   the whole test suite
# Both create .venv and install everything first (scripts/setup.sh, idempotent).

VENV := .venv

.PHONY: demo test setup setup-dev lint

demo: setup
	$(VENV)/bin/nirbridge demo

test: setup-dev
	$(VENV)/bin/python -m pytest

setup:
	scripts/setup.sh

setup-dev:
	scripts/setup.sh --dev

# ruff over the whole tree; the dependency rules of DESIGN.md (import-linter, through scripts/lint_imports.py:
# plain lint-imports cannot see the package-dir mapped folders); types of the shared base and the engine
lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python scripts/lint_imports.py
	$(VENV)/bin/mypy nirbridge engine
