# edge-mfa: build, run and test.
#   make deps    install missing system packages (Debian, as root)
#   make wasm    build the proxy-wasm filter -> build/edge_mfa.wasm
#   make store   build edge-mfa-store and demo-upstream (debug)
#   make envoy   make sure an Envoy is available (scripts/envoy-bin)
#   make run     demo on http://localhost:$${EDGE_MFA_PORT:-8080}/login (Ctrl-C stops);
#                EDGE_MFA_CONFIG=file.json make run: with one's own plugin config (checked first)
#   make check-config CONFIG=file   check a plugin config / Istio manifest (edge-mfa check-config)
#   make oci     Wasm OCI image: build/oci + build/edge-mfa-oci.tar, prints the sha256 for Istio
#   make test    all tests, including end-to-end through a real Envoy, then the
#                store suite + replica test again on PostgreSQL (scripts/test-postgres)
#   make bench   hot path vs. no filter / Wasm floor / jwt_authn, ladder, size, cold paths -> docs/bench.md
#   make screenshots  browser tests writing their screenshots into docs/
#   make fmt | clean

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CARGO ?= cargo
TARGET_DIR := $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(ROOT)/target)
EDGE_MFA_WASM ?= $(ROOT)/build/edge_mfa.wasm
EDGE_MFA_STORE_BIN ?= $(TARGET_DIR)/debug/edge-mfa-store
DEMO_UPSTREAM_BIN ?= $(TARGET_DIR)/debug/demo-upstream
# Test threads for `cargo test` (each e2e test starts its own stack).
TEST_THREADS ?= 2

.PHONY: deps wasm store envoy run test bench fmt clean browser-deps fuzz soak screenshots check-config oci

deps:
	@$(ROOT)/scripts/install-deps

wasm:
	@$(ROOT)/scripts/build-wasm

store:
	$(CARGO) build -p edge-mfa-store -p test-harness -p edge-mfa-cli --bins

envoy:
	@envoy_cmd="$$($(ROOT)/scripts/envoy-bin)"; echo "envoy: $$envoy_cmd"; $$envoy_cmd --version

run: deps wasm store envoy
	@$(ROOT)/scripts/run-dev

# make oci: the module as a Wasm OCI image (Istio's format), reproducible: build/oci (layout) and
# build/edge-mfa-oci.tar; prints the module's sha256 for WasmPlugin.spec.sha256. OCI_TAG overrides.
OCI_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' $(ROOT)/Cargo.toml | head -n1)
oci: wasm
	$(CARGO) build -q -p edge-mfa-cli
	$(TARGET_DIR)/debug/edge-mfa oci $(EDGE_MFA_WASM) --out $(ROOT)/build/oci --tar $(ROOT)/build/edge-mfa-oci.tar --tag $(OCI_TAG)

# make check-config CONFIG=file: the filter's own parser on a plugin config or Istio manifest.
check-config:
	@test -n "$(CONFIG)" || { echo "usage: make check-config CONFIG=file" >&2; exit 2; }
	$(CARGO) build -q -p edge-mfa-cli
	$(TARGET_DIR)/debug/edge-mfa check-config $(CONFIG)

browser-deps:
	@if [ ! -d $(ROOT)/browser-tests/node_modules/playwright-core ]; then cd $(ROOT)/browser-tests && npm ci --no-audit --no-fund; fi

test: deps wasm store browser-deps
	@ENVOY_BIN="$${ENVOY_BIN:-$$($(ROOT)/scripts/envoy-bin)}"; \
	echo "make test: envoy = $$ENVOY_BIN"; \
	export ENVOY_BIN EDGE_MFA_E2E_REQUIRED=1 \
	  EDGE_MFA_WASM="$(EDGE_MFA_WASM)" EDGE_MFA_STORE_BIN="$(EDGE_MFA_STORE_BIN)" DEMO_UPSTREAM_BIN="$(DEMO_UPSTREAM_BIN)"; \
	$(CARGO) clippy -p edge-mfa -p edge-mfa-filter --lib; \
	env -u EDGE_MFA_TEST_PG_URL $(CARGO) test --workspace --no-fail-fast -- --test-threads=$(TEST_THREADS); \
	CARGO="$(CARGO)" TEST_THREADS=$(TEST_THREADS) $(ROOT)/scripts/test-postgres

# make screenshots: the browser tests again, writing their screenshots into docs/ (tests alone
# write them into a temp dir, so `make test` leaves the tree clean).
screenshots: deps wasm store browser-deps
	@ENVOY_BIN="$${ENVOY_BIN:-$$($(ROOT)/scripts/envoy-bin)}"; \
	export ENVOY_BIN EDGE_MFA_E2E_REQUIRED=1 SCREENSHOT_DIR="$(ROOT)/docs" \
	  EDGE_MFA_WASM="$(EDGE_MFA_WASM)" EDGE_MFA_STORE_BIN="$(EDGE_MFA_STORE_BIN)" DEMO_UPSTREAM_BIN="$(DEMO_UPSTREAM_BIN)"; \
	$(CARGO) test -p test-harness --test browser -- --test-threads=1

# make bench: the hot path against baselines, the floor ladder, module size, Wasm VM memory,
# cold paths and store throughput -> docs/bench.md (see bench/README.md).
# Knobs: BENCH_SECONDS BENCH_WARMUP BENCH_RUNS BENCH_CONFIGS BENCH_UPSTREAM BENCH_COLD_N
# BENCH_STORE_SECONDS BENCH_MEMORY BENCH_PIN BENCH_OUT ... (test-harness/src/bin/bench.rs).
# The store is a release build (its throughput is measured); setting EDGE_MFA_STORE_BIN skips it.
EDGE_MFA_FLOOR_WASM ?= $(ROOT)/build/edge_mfa_floor.wasm
BENCH_STORE_BIN := $(if $(filter environment command line,$(origin EDGE_MFA_STORE_BIN)),$(EDGE_MFA_STORE_BIN),$(TARGET_DIR)/release/edge-mfa-store)
BENCH_TIMEOUT ?= 900
bench:
	@$(ROOT)/scripts/install-deps --bench
	@$(ROOT)/scripts/build-wasm
	@$(ROOT)/scripts/build-wasm bench/floor
	$(if $(filter environment command line,$(origin EDGE_MFA_STORE_BIN)),,$(CARGO) build --release -p edge-mfa-store)
	$(CARGO) build -p test-harness --bins
	@ENVOY_BIN="$${ENVOY_BIN:-$$($(ROOT)/scripts/envoy-bin)}"; \
	export ENVOY_BIN EDGE_MFA_WASM="$(EDGE_MFA_WASM)" EDGE_MFA_FLOOR_WASM="$(EDGE_MFA_FLOOR_WASM)" \
	  EDGE_MFA_STORE_BIN="$(BENCH_STORE_BIN)" DEMO_UPSTREAM_BIN="$(DEMO_UPSTREAM_BIN)"; \
	timeout -k 10 $(BENCH_TIMEOUT) $(TARGET_DIR)/debug/bench

# Five minutes at saturation with valid sessions across 2 Envoy workers (SOAK_SECONDS overrides):
# 0 errors, Envoy's memory flat, store healthy; writes bench/soak-results.md.
soak: deps wasm store
	@$(ROOT)/scripts/install-deps --bench
	@ENVOY_BIN="$${ENVOY_BIN:-$$($(ROOT)/scripts/envoy-bin)}"; \
	export ENVOY_BIN EDGE_MFA_WASM="$(EDGE_MFA_WASM)" EDGE_MFA_STORE_BIN="$(EDGE_MFA_STORE_BIN)" DEMO_UPSTREAM_BIN="$(DEMO_UPSTREAM_BIN)"; \
	timeout -k 10 $$(( $${SOAK_SECONDS:-300} + 120 )) $(TARGET_DIR)/debug/soak

# make fuzz: every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 600) each, one after
# another; corpus in fuzz/corpus (replayed by `make test`), logs in fuzz/logs. See scripts/fuzz.
fuzz:
	@$(ROOT)/scripts/fuzz

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(ROOT)/build $(ROOT)/.run
