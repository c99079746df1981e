# ibkr-oauth developer tasks. `make ci` is what .ci/run runs on a fresh machine.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: build test lint fmt doc regenerate check-generated ci demo bench

build:
	$(CARGO) build --workspace --all-targets

## The README's test command.
test:
	$(CARGO) test --workspace --all-features

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt:
	$(CARGO) fmt --all

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --all-features

regenerate:
	scripts/regenerate

check-generated:
	scripts/check-generated

bench:
	$(CARGO) bench --workspace

ci: lint test doc check-generated
