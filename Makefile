# Two commands on a fresh machine: `make run` and `make test`. Both create .venv on first use
# and re-install only when pyproject.toml changes (the stamp carries its hash).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The local wheel cache holds this build (see the README); elsewhere pip fetches it.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
PYTEST_ARGS ?=

.PHONY: run test bench lint docs clean-venv mutate

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[all]'
	$(PY) scripts/check_env.py $(TORCH_SPEC)
	@rm -f $(VENV)/.installed-*
	@touch $@

# The main job: the seeds preset at batch 1 on every runtime installed here (eager, ONNX Runtime,
# OpenVINO; ExecuTorch and ncnn with the mobile extra: 80 cells), ~10 min on 2 cores; resumes an
# interrupted sweep from runs/bench/results.jsonl. RUNTIMES=eager,onnxruntime,openvino: 48 cells, ~5 min.
RUNTIMES ?= installed
run: $(STAMP)
	$(VENV)/bin/leannet bench --preset seeds --runtimes $(RUNTIMES) --report --out runs/bench

# Two pytest-xdist workers of one torch thread each: the default tier in ~5 min on a Zen5 2-vCPU VM,
# ~6.5 min on an AVX2 one
# (two workers of two threads each oversubscribe the cores: 11m46s). A module's tests stay on
# one worker (loadscope): split, both workers built the same module fixture (the detector
# overfit, ~30 s, twice). TEST_WORKERS=0 runs it in one process; then LEANNET_TEST_THREADS=2.
TEST_WORKERS ?= 2
test: $(STAMP)
	LEANNET_TEST_THREADS=$${LEANNET_TEST_THREADS:-1} $(PY) -m pytest -n $(TEST_WORKERS) $(if $(filter-out 0,$(TEST_WORKERS)),--dist loadscope) $(PYTEST_ARGS)

# The short benchmark scripts, a few minutes in all on 2 cores (each prints its table). The long
# ones run by name: `make bench BENCH="bench_seeds_vs_timm"` (~15 min), bench_trust (~50 min),
# bench_deploy (~70 min), bench_detect (hours); or `$(PY) benchmarks/NAME.py --help`.
BENCH ?= bench_reparam bench_spill bench_tresnet_snet bench_train_digits

bench: $(STAMP)
	@for b in $(BENCH); do f=benchmarks/$${b%.py}.py; echo "== $$f"; $(PY) $$f || exit $$?; done

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	PYTHONPATH=src $(VENV)/bin/lint-imports

docs: $(STAMP)
	$(PY) scripts/gen_models_table.py

clean-venv:
	rm -rf $(VENV)

# Mutation testing (not part of `make test`). `make mutate MUTATE=layers.fusion` runs one
# module's campaign (layers.fusion, layers.rep_block, detect.evaluate, profile.complexity,
# deploy.quantize, weights.convert) in .mutmut/<module>/ against the few fast tests that judge
# it (scripts/mutate.py, MODULES), niced, one child; `make mutate` runs them all in turn (hours
# on 2 cores). Survivors: `$(PY) scripts/mutate.py layers.fusion -- show <mutant name>`.
MUTATE ?=

mutate: $(STAMP)
	$(PY) scripts/mutate.py $(if $(MUTATE),$(MUTATE),--all)
