# Two commands set everything up on a fresh machine: `make demo` and `make test`.
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PY := .venv/bin/python
DEMO_DIR ?= demo
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv runtime test lint typecheck pytest demo bench clean torch interop system-check
# What the suite drives besides Python (the web page in Chromium, the image with podman).
SYSTEM_TOOLS := /usr/bin/chromium /usr/bin/podman /usr/sbin/runc /usr/sbin/debootstrap

$(UV):
	python3 -m pip install --quiet --target .tools/lib uv
	mkdir -p .tools/bin && printf '#!/bin/sh\nPYTHONPATH=%s/.tools/lib exec python3 -m uv "$$@"\n' "$(CURDIR)" > .tools/bin/uv && chmod +x .tools/bin/uv

.venv/.synced: $(UV) uv.lock pyproject.toml schema/pyproject.toml sdk/pyproject.toml sdk/src/mamamia/_boxdecode.c ingest/pyproject.toml server/pyproject.toml
	$(UV) sync --locked --inexact --compile-bytecode
	touch $@

venv: .venv/.synced

# The demo needs the four packages only, not the development group (pytest, playwright, ...).
.venv/.runtime: $(UV) uv.lock pyproject.toml schema/pyproject.toml sdk/pyproject.toml ingest/pyproject.toml server/pyproject.toml
	$(UV) sync --locked --inexact --no-dev
	touch $@

runtime: .venv/.runtime

# Stops at once, in one line, rather than with one setup error per browser or container test.
system-check:
	@missing=""; for t in $(SYSTEM_TOOLS); do [ -x "$$t" ] || missing="$$missing $$(basename $$t)"; done; \
	[ -z "$$missing" ] || { echo "make test needs:$$missing; install with: sudo apt-get install -y chromium podman runc debootstrap (or run .ci/run, which does)"; exit 1; }

# torch is not in the lock's default install (uv would fetch a multi-GB CUDA build); pip takes the
# local CPU wheel instead. Only the tests and benchmarks that need torch use it.
torch: venv
	@$(PY) -c "import torch" 2>/dev/null || ($(UV) pip install --python $(PY) pip >/dev/null && $(PY) -m pip install --quiet torch==2.13.0)

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/hadolint Dockerfile

typecheck: venv interop
	.venv/bin/mypy

# nnU-Net, MONAI and TorchIO (the sdk's optional extras) for their tests, pinned to the CPU torch.
INTEROP_PINS := torch==2.13.0 torchvision==0.28.0 nnunetv2==2.8.1 monai==1.6.1 torchio==1.2.1
interop: torch
	@$(PY) -c "import nnunetv2, monai, torchio" 2>/dev/null || $(PY) -m pip install --quiet $(INTEROP_PINS)

pytest: system-check venv torch interop
	# Bytecode caching matters here: the suite starts many Python subprocesses.
	env -u PYTHONDONTWRITEBYTECODE .venv/bin/pytest -q $(PYTEST_ARGS)

test: system-check lint typecheck pytest

demo: runtime
	.venv/bin/mamamia phantom $(DEMO_DIR)/raw --cases 8 --scale 0.25
	.venv/bin/mamamia ingest $(DEMO_DIR)/raw $(DEMO_DIR)/catalog
	.venv/bin/mamamia serve $(DEMO_DIR)/catalog --host $(HOST) --port $(PORT)

bench: venv
	$(PY) bench/run_all.py --out bench/RESULTS.md

clean:
	rm -rf .venv .tools $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
