# The two commands of the README. Each creates .venv if it is missing and
# installs the project into it, so a fresh machine needs only Python 3.11+ and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INFRA_TOOLS := $(VENV)/infra-tools/.installed

.PHONY: demo test lint security bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "weightgate needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools  # 3.11 venvs seed setuptools 65.5.0 (known CVEs)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/weightgate demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# bandit: static security analysis of gateway/ (silent when clean). pip-audit: known
# vulnerabilities in the installed dependencies; only a notice if its database is out of reach.
security: $(STAMP)
	$(BIN)/bandit -q -r gateway -c pyproject.toml
	$(BIN)/python .ci/pip_audit.py

# checkov, docker compose and terraform for tests/infra, beside the venv (tests/infra/tools.py says why).
$(INFRA_TOOLS): tests/infra/tools.py | $(STAMP)
	$(BIN)/python -m tests.infra.tools $(VENV)/infra-tools

test: lint security $(INFRA_TOOLS)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks
