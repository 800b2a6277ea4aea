# The two set-up commands README.md gives: `make demo` and `make test`.
SHELL := /bin/bash
CHARTS ?= $(abspath ../shared/charts)

.PHONY: demo test env-up env-down lint

env-up:
	scripts/testenv up

env-down:
	scripts/testenv down

# The main job on the embedded local environment: install the demo chart with helm, push a newer
# tag to the local registry, let keelson update the release, print helm history.
demo: env-up
	cargo build --quiet
	scripts/demo

# Every test, against the real environment (brought up first when needed).
test: env-up
	eval "$$(scripts/testenv env)" && KEELSON_SHARED_CHARTS="$(CHARTS)" cargo test --workspace

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
