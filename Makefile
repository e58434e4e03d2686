# The two commands the README starts with: `make demo` and `make test`.
# Both set everything up from this repository's own files on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[web,test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/reform --home demo-home demo

# The browser tests drive Debian's Chromium (no browser download): install it once.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) \
		apt-get install -y -q --no-install-recommends chromium

test: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) demo-home test-artifacts
