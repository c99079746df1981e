# ibkr-oauth developer tasks. `make ci` is what .ci/run runs on a fresh machine.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
# Features to build and test beyond the defaults. Not --all-features: that would switch on the
# generated crate's `native-tls` feature and with it OpenSSL.
FEATURES ?= --features ibkr-oauth/blocking,ibkr-oauth/middleware,ibkr-oauth/encrypted-keys,ibkr-oauth/pacing

.PHONY: build test test-default-features lint fmt doc regenerate check-generated no-openssl interop ci demo example bench gateway-fleet

build:
	$(CARGO) build --workspace --all-targets

## The README's test command: one cargo command, one feature set.
test:
	$(CARGO) test --workspace $(FEATURES)

## The facade's key tests with its default features, where an encrypted key must be refused
## with a message naming the `encrypted-keys` feature. A second feature set builds the facade
## again (about 1.5 minutes), so it is CI's step and not part of `make test`.
test-default-features:
	$(CARGO) test -p ibkr-oauth --test assertion_keys

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(FEATURES) -- -D warnings
	$(CARGO) clippy -p ibkr-oauth --lib --no-default-features -- -D warnings

fmt:
	$(CARGO) fmt --all

## The workspace's docs, and the README's `cargo doc` command as docs.rs builds the facade
## (all its features): a broken link fails either.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps $(FEATURES)
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p ibkr-oauth --all-features --no-deps

## The main job with no IBKR account: a local sandbox, a fresh key, the whole token flow.
demo:
	$(CARGO) run -p ibkr-oauth-cli -- demo

## An IBKR API call through the bearer middleware, against a local sandbox.
example:
	$(CARGO) run -p ibkr-oauth --example echo --features middleware
	$(CARGO) run -p ibkr-oauth --example session --features middleware

regenerate:
	scripts/regenerate

check-generated:
	scripts/check-generated
	scripts/check-generated-selftest

## rustls only: OpenSSL must not be anywhere in the dependency tree.
no-openssl:
	@if $(CARGO) tree --workspace -e normal,build $(FEATURES) -i openssl-sys >/dev/null 2>&1; then \
		echo "openssl-sys is in the dependency tree:"; \
		$(CARGO) tree --workspace -e normal,build $(FEATURES) -i openssl-sys; exit 1; \
	else echo "no-openssl: ok (no openssl-sys in the tree)"; fi

## Assertions signed by the SDK verified by PyJWT (Python), with the public key.
interop:
	scripts/pyjwt-interop

## The gateway under 8 hammering client processes at 3x IBKR's limit (part of `make test`;
## this runs it alone and prints what the clients and the sandbox counted).
gateway-fleet:
	$(CARGO) test -p ibkr-oauth-cli --test gateway eight_clients -- --nocapture

## Every criterion bench (the session bench needs `middleware`: the test features).
bench:
	$(CARGO) bench --workspace $(FEATURES)

ci: lint no-openssl test test-default-features doc check-generated interop demo example
