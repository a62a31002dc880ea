# callbox: `make run` starts the appliance, `make test` runs every test. Both set up what is
# missing first: Debian packages (when root, or with passwordless sudo), a .venv, the project.
SHELL := /bin/bash
.DEFAULT_GOAL := run

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
IS_PI   := $(shell grep -qas "Raspberry Pi" /proc/device-tree/model && echo 1)

# Build and run needs. On a Pi the camera, KMS and GLib bindings come from Raspberry Pi OS.
APT_BASE := python3 python3-venv python3-dev build-essential pkg-config libasound2-dev \
            libdbus-1-dev libgirepository1.0-dev libcairo2-dev dbus alsa-utils \
            libspeexdsp-dev swig
APT_PI   := python3-picamera2 python3-kms++ python3-gi python3-libcamera \
            bluez bluez-alsa-utils libasound2-plugin-bluez
# What the tests drive for real: a D-Bus daemon, headless Chromium, Janus, speech and sound
# tools, systemd's analyzers, shellcheck, curl (the README's commands), and the audio-processing
# libraries.
# apt's numpy and scipy make the Bookworm venv test (tests/images/test_bookworm_venv.py);
# meson, ninja and kms++'s build packages build the real pykms the display tests check with.
APT_TEST := chromium espeak-ng sox janus shellcheck systemd iproute2 libspeexdsp-dev swig curl \
            libwebrtc-audio-processing-dev procps python3-numpy python3-scipy \
            meson ninja-build libfmt-dev libdrm-dev pybind11-dev
# The virtual kit (tests/vm): Debian 12 built with mmdebstrap, booted by QEMU under TCG.
APT_VM   := qemu-system-x86 qemu-utils mmdebstrap e2fsprogs
VENV_FLAGS := $(if $(IS_PI),--system-site-packages,)

define apt_ensure
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "callbox needs these Debian packages; install them as root: $$missing" >&2; exit 1; fi; \
	  echo "installing: $$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; \
	fi
endef

.PHONY: run test bench soak lint typecheck pytest setup setup-test clean vm vm-test

$(VENV)/.apt-base:
	$(call apt_ensure,$(APT_BASE) $(if $(IS_PI),$(APT_PI)))
	@mkdir -p $(VENV) && touch $@

$(VENV)/.apt-test: $(VENV)/.apt-base Makefile
	$(call apt_ensure,$(APT_TEST) $(APT_VM))
	@touch $@

$(BIN)/python: | $(VENV)/.apt-base
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/pip install -q -e ".[hardware]"
	@touch $@

# picamera2 is pure Python: the camera tests build their doubles from the real classes, at
# the 0.3 release Raspberry Pi OS Bookworm ships as python3-picamera2. Without its
# dependencies (simplejpeg, prctl, libcamera: Pi-only or compiled against apt's libraries;
# the tests import it over stand-ins for them).
PICAMERA2_VERSION := 0.3.31
$(VENV)/.installed-test: pyproject.toml $(BIN)/python $(VENV)/.apt-test $(VENV)/kmsxx/.built
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps "picamera2==$(PICAMERA2_VERSION)"
	@touch $(VENV)/.installed $@  # the test extra holds the hardware one: make run is set up

# kms++ at the commit Raspberry Pi OS Bookworm packages (python3-kms++), built for the tests:
# the pykms test double offers only what this real module has (tests/hal/real/kms.py).
KMSXX_TARBALL ?= ../shared/vendor/kmsxx-9ae90ce.tar.gz
$(VENV)/kmsxx/.built: $(VENV)/.apt-test
	rm -rf $(VENV)/kmsxx && mkdir -p $(VENV)/kmsxx
	tar -xzf $(KMSXX_TARBALL) -C $(VENV)/kmsxx --strip-components=1
	cd $(VENV)/kmsxx && meson setup build -Dutils=false -Domap=disabled -Dpykms=enabled \
	    >build.log 2>&1 && ninja -C build >>build.log 2>&1 || { cat build.log >&2; exit 1; }
	@touch $@

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

run: setup
	$(BIN)/callbox run $(if $(CONFIG),--config $(CONFIG))

lint: setup-test
	$(BIN)/ruff check appliance hal tests bench examples
	$(BIN)/lint-imports

typecheck: setup-test
	$(BIN)/mypy

pytest: setup-test
	$(BIN)/pytest $(PYTEST_ARGS)

# lint-imports: the layers point one way (the contracts in pyproject.toml).
# The virtual kit's lane (tests/vm) runs beside the rest: it mostly waits on the emulator and
# the rest mostly on sockets and timers, so side by side they take the longer of the two
# rather than the sum. Its report is printed after the rest's.
test: setup-test
	$(BIN)/ruff check appliance hal tests bench examples
	$(BIN)/lint-imports
	$(BIN)/mypy
	@vmtmp=$$(mktemp -d); \
	$(BIN)/pytest tests/vm --basetemp=$$vmtmp/tmp $(PYTEST_ARGS) >$$vmtmp/log 2>&1 & vm=$$!; \
	trap 'kill $$vm 2>/dev/null; rm -rf $$vmtmp' INT TERM; \
	$(BIN)/pytest --ignore=tests/vm $(PYTEST_ARGS); rest=$$?; \
	wait $$vm; lane=$$?; \
	echo "==================== the virtual kit (tests/vm) ===================="; \
	cat $$vmtmp/log; rm -rf $$vmtmp; \
	test $$rest -eq 0 -a $$lane -eq 0

# The virtual kit alone: the image is cached in ~/.cache/callbox/vm by a hash of its recipe.
vm-test: setup-test
	$(BIN)/pytest tests/vm $(PYTEST_ARGS)

# Boot the virtual kit for a person: prints its API address, token and how to see its screen.
vm: setup-test
	$(BIN)/python -m tests.vm

bench: setup-test
	$(BIN)/python -m bench

soak: setup-test
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
