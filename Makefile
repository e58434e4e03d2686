# The two commands the README starts with: `make demo` and `make test`.
# Both set everything up from this repository's own files on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test setup clean

# No pip cache: each wheel is installed once per venv, and a second, cached copy of every
# downloaded one only adds to the disk that setup needs (a CI machine once ran out of it).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir --upgrade pip
	$(PY) -m pip install -q --no-cache-dir -e '.[web,test,cluster]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/reform --home demo-home demo

# The browser tests drive Debian's Chromium (no browser download) and the player tests a real
# Music Player Daemon: install both once, from Debian's packages.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
CHROMIUM := /usr/bin/chromium
MPD := /usr/bin/mpd
$(CHROMIUM) $(MPD):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
		$(notdir $@)

test: $(STAMP) $(CHROMIUM) $(MPD)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) demo-home test-artifacts
