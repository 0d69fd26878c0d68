# Whittle — build, run and test.  `make run` and `make test` install what is missing first.
SWIFT      ?= swift
VENV       := .venv
PYTHON     := $(VENV)/bin/python
CACHE      := .cache/models
RELEASE    := .build/release/whittle
APT_PACKAGES := libopenblas-dev libncursesw5-dev pkg-config tmux fonts-dejavu-core fonts-dejavu-extra python3-venv

.PHONY: run test build release deps venv models samples bench parity clean help

help:
	@echo "make run     build and open the workbench on the bundled sample model"
	@echo "make test    build and run every test (unit, CLI, parity with onnxruntime)"
	@echo "make models  fetch the real third-party models and build their data into $(CACHE)"
	@echo "make bench   print Whittle vs onnxruntime speed ratios"

# System packages: installed only when something is missing (needs root or sudo).
deps:
	@missing=""; \
	pkg-config --exists openblas || missing="$$missing libopenblas-dev"; \
	pkg-config --exists ncursesw || missing="$$missing libncursesw5-dev"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	command -v tmux >/dev/null || missing="$$missing tmux"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf ] || missing="$$missing fonts-dejavu-extra"; \
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Project-local Python venv with the reference tools (onnx, onnxruntime, numpy, ...).
venv: $(VENV)/.installed
$(VENV)/.installed: Scripts/requirements.txt
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r Scripts/requirements.txt
	@touch $@

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product whittle

run: release
	$(RELEASE)

test: deps venv release
	$(SWIFT) test
	bash Scripts/check-cli.sh $(RELEASE)
	bash Scripts/check-tui.sh $(RELEASE)
	bash Scripts/check-parity.sh $(RELEASE)
	bash Scripts/check-quant.sh $(RELEASE)

models: deps venv
	$(PYTHON) -m pip install -q --disable-pip-version-check -r Scripts/models/requirements.txt
	$(PYTHON) Scripts/models/fetch_models.py --cache $(CACHE)

samples: venv
	@echo "SampleModels/ is committed; to regenerate it see SampleModels/README.md"

bench: release venv
	bash Scripts/bench.sh $(RELEASE)

clean:
	rm -rf .build
