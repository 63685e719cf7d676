# dockd — set-up, demo, tests, benchmark.
# Every target installs what is missing first (apt packages, then .venv),
# so `make demo` and `make test` work on a fresh Debian 12 machine as root.

VENV      ?= .venv
PYTHON    ?= python3
BIN       := $(VENV)/bin
# What a dock needs to run dockd (`make install`), and what the tests need besides.
RUNTIME_PACKAGES := python3 python3-venv python3-dev gcc pkg-config libsystemd-dev ffmpeg python3-av \
                fuse3 fusefat exfat-fuse exfatprogs dosfstools util-linux tzdata udev procps xorriso \
                libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-wqy-microhei
APT_PACKAGES := $(RUNTIME_PACKAGES) python3-pip mtools strace systemd faketime \
                umockdev gir1.2-umockdev-1.0 libgirepository1.0-dev libcairo2-dev \
                poppler-utils ceph-mon ceph-osd radosgw ceph-common chromium chromium-driver
CHECKED   := dockd tests bench

.PHONY: all setup apt apt-runtime venv demo test lint typecheck unit unit-any-day bench clean install openapi

# Under libfaketime (`faketime '+400 days' make unit`, and unit-any-day below):
# its 0.9.10 hangs Python's timed waits unless the monotonic clock is left
# alone, and then breaks time.sleep, which tests/faketime/sitecustomize.py mends.
ifneq (,$(findstring faketime,$(LD_PRELOAD)))
export FAKETIME_DONT_FAKE_MONOTONIC := 1
export PYTHONPATH := $(CURDIR)/tests/faketime$(if $(PYTHONPATH),:$(PYTHONPATH))
endif

all: test

apt: PACKAGES = $(APT_PACKAGES)
apt-runtime: PACKAGES = $(RUNTIME_PACKAGES)
apt apt-runtime:
	@missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

setup: apt venv

demo: setup
	$(BIN)/dockd demo

lint: setup
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)

# docs/openapi.json is generated from the request and permission tables (a test checks it).
openapi: setup
	$(BIN)/python -m dockd.runner.openapi > docs/openapi.json

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q

# The guard that no test depends on the day it runs (DESIGN §6): every test that
# runs the real CLI or daemon (marked real_clock by tests/conftest.py) again,
# 400 days on. The whole suite passes there too (and at +3650 days); this part
# is what a dated fixture would break first, at a fraction of the time.
unit-any-day: setup
	FAKETIME_DONT_FAKE_MONOTONIC=1 PYTHONPATH=$(CURDIR)/tests/faketime \
	  faketime '+400 days' $(BIN)/pytest -q -m 'real_clock and not ceph'

test: lint typecheck unit unit-any-day

bench: setup
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/merkle.py
	$(BIN)/python bench/dock.py
	$(BIN)/python bench/dock_scale.py
	$(BIN)/python bench/retention.py
	$(BIN)/python bench/replicate.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info .vm-cache

# Install on a dock, as root: /opt/dockd venv, units, udev rules, config.
# Variables (DESTDIR, WHEELHOUSE, DOCKD_ENABLE, ...) pass through, see the script.
install: apt-runtime
	sh packaging/install.sh

# The whole machine (DESIGN §6, tests/vm/): a Debian guest in qemu with systemd,
# udev and hot-plugged USB cameras, power cuts included. Minutes, not seconds,
# so not part of `make test`; needs root. Images are cached in .vm-cache/.
.PHONY: test-vm
test-vm: setup
	@$(MAKE) --no-print-directory apt PACKAGES="mmdebstrap qemu-system-x86 qemu-utils"
	DOCKD_VM_TESTS=1 $(BIN)/pytest -q tests/vm
