# The two commands the README starts with: `make demo` and `make test`.
# Both set everything up from this repository's own files on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test setup bench-ingest clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[web,test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/reform --home demo-home demo

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) demo-home test-artifacts
