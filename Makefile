# ringtally — the two commands a new user needs are `make demo` and `make test`.
# Everything they depend on (Debian packages, the virtualenv, the Rust core in
# release mode, Kafka's jars) is set up here on first use and reused after.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := .make
NATIVE_SRC := $(shell find native/src native/Cargo.toml native/Cargo.lock -type f 2>/dev/null)
APT_PACKAGES := postgresql redis-server openjdk-17-jre-headless maven chromium

.PHONY: help deps venv native stack-up stack-down test test-python test-rust demo bench schemas lint clean

help:
	@echo "make demo   set everything up and run the demo"
	@echo "make test   set everything up and run the whole test suite"
	@echo "make bench  run the benchmarks under bench/ (writes bench/results/)"

$(STAMP):
	@mkdir -p $(STAMP)

# Debian packages: installed only when their binary is missing (needs root or sudo).
deps: $(STAMP)/deps
$(STAMP)/deps: Makefile | $(STAMP)
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	[ -x /usr/lib/postgresql/15/bin/postgres ] || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
	    || { echo "could not install:$$missing (run: sudo apt-get install$$missing)"; exit 1; }; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first"; exit 1; }
	@touch $@

# The virtualenv with pinned dependencies and ringtally installed editable, with
# the test and demo extras (the demo's chart needs matplotlib; so do its tests);
# reinstalled (which rebuilds the Rust core in release mode) when native/ changes.
venv: $(STAMP)/venv
$(STAMP)/venv: pyproject.toml constraints.txt $(NATIVE_SRC) | $(STAMP)
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test,demo]'
	@touch $@

stack-up: $(STAMP)/deps $(STAMP)/venv
	$(BIN)/ringtally stack up

stack-down:
	$(BIN)/ringtally stack down

schemas: $(STAMP)/venv
	$(BIN)/python -m models.schema

test-rust: $(STAMP)/deps
	cd native && cargo test -j 2 --no-default-features

test-python: stack-up
	$(BIN)/python -m pytest

test: test-rust test-python

demo: stack-up
	$(BIN)/python -m connectors.demo

bench: stack-up
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(STAMP) $(VENV) native/target
