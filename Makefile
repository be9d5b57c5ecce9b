# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast pack-test measure clean bench-server openapi serve system-deps bench wheel-check

$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: a bare `torch` requirement would pull a CUDA build.
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q -e '.[embed,dev,serve,report,fast,onnx]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages that some tests need: headless Chromium (+ driver) for the HTML report test. Idempotent: installs
# only when /usr/bin/chromium is missing. .ci/run calls it; needs root (or sudo).
system-deps:
	@if [ -x /usr/bin/chromium ]; then echo "system-deps: chromium present"; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

demo: $(STAMP)
	$(BIN)/policyengine check policies/default.policy --input examples/messages.jsonl

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not model"

# The built wheel, installed in a fresh venv (torch==2.13.0 CPU pinned first), runs `check` on the default pack
# from outside the source tree with a cold intent cache: a data file missing from the wheel fails here (an editable
# install hides it). About 3-4 min on 2 shared cores (load 6): installing torch, training the intent map cold.
wheel-check: $(STAMP)
	.ci/wheel-check $(BIN)/python

pack-test: $(STAMP)
	$(BIN)/policyengine test policies/default.policy

measure: $(STAMP)
	$(BIN)/python scripts/measure_pack.py

# Load test of `policyengine serve` on the default pack (loopback only, bounded in time and request count).
bench-server: $(STAMP)
	$(BIN)/python benchmarks/server_load.py --policy policies --out benchmarks/server_load.json

# Regenerate the checked-in OpenAPI schema of the service (tests/server compare it with the served one).
openapi: $(STAMP)
	$(BIN)/python -m policyengine.server.openapi > docs/openapi.json

serve: $(STAMP)
	$(BIN)/policyengine serve policies

.PHONY: fuzz
# property tests of the language (parser totality, counter-examples, overrides, rule order) with many examples
fuzz: $(STAMP)
	PE_FUZZ_EXAMPLES=$${PE_FUZZ_EXAMPLES:-2000} $(BIN)/python -m pytest -q tests/testing/test_properties.py -m "not model"
	# parser + checker on >= 100k mutated grammar-generated and real policy files (docs/hardening.md)
	$(BIN)/python fuzz/fuzz_policy.py --examples $${PE_FUZZ_CASES:-100000}

.PHONY: evasion
# the evasion suite: catch rate of the pack under each evasion vs unperturbed, false refusals (docs/hardening.md)
evasion: $(STAMP)
	$(BIN)/python benchmarks/evasion.py --json evasion.json

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# Performance benchmarks (issue 4): regex stage, concept stage, end to end, cold start, peers (LLM Guard, Presidio:
# installed into benchmarks/.peers-venv on first run), ONNX vs torch. ~25 min on 2 cores; `BENCH_ARGS=--quick` for
# a smoke run. Results: benchmarks/results/latest.json.
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)
