# support-operator. `make help` lists the targets.
CARGO ?= cargo
BIN := target/debug/support-operator
NOW ?= 2026-11-25T12:00:00Z
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
STATIC_BIN := target/$(HOST)/release/support-operator
IMAGE ?= ghcr.io/support-operator/support-operator:$(VERSION)
# Images live under target/ (vfs driver: no daemon, no kernel overlay support needed).
BUILDAH_FLAGS := --storage-driver vfs --root $(CURDIR)/target/containers/storage --runroot $(CURDIR)/target/containers/run
BUILDAH := buildah $(BUILDAH_FLAGS)

.PHONY: help quickstart build test test-fast tools crds check-crds fmt lint bench run e2e static image image-test push

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

quickstart: ## Check the example neglected AKS cluster (offline, as of $(NOW))
	$(CARGO) run --quiet -- check --policy examples/policies/aks.yaml \
	  --snapshot examples/snapshots/aks-neglected.json --server-version v1.34.2 --now $(NOW)

build: ## Build the binary
	$(CARGO) build --locked

tools: ## Install promtool, prometheus, kubectl and buildah (needs root; idempotent)
	bash scripts/install-tools.sh

test: ## Every test: unit, property, golden, CLI, emulator scenarios, manifests and alert rules
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) test --locked --workspace --lib --bins --tests
	$(MAKE) --no-print-directory check-crds

test-fast: ## Unit and property tests of the engine only
	$(CARGO) test --locked --lib

static: ## The release binary, statically linked (glibc, +crt-static): what the image ships
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked --target $(HOST) --bin support-operator

image: static ## The container image (Dockerfile, FROM scratch) with buildah: no daemon, nothing pulled
	mkdir -p target/image && strip -o target/image/support-operator $(STATIC_BIN)
	cp /etc/ssl/certs/ca-certificates.crt target/image/ca-certificates.crt  # Debian's ca-certificates
	$(BUILDAH) bud --pull-never --layers=false -t $(IMAGE) -f Dockerfile .
	@$(BUILDAH) images --format '{{.Name}}:{{.Tag}} {{.ID}} {{.Size}}' $(IMAGE)

image-test: image ## Run the image (buildah run --isolation chroot): check an example, read a cluster
	SUPPORT_IMAGE=$(IMAGE) SUPPORT_BUILDAH_FLAGS="$(BUILDAH_FLAGS)" \
	  $(CARGO) test --locked --test image -- --ignored --test-threads=1

push: image ## Push the image to its registry (logged in with buildah login), pin its digest in config/release
	$(BUILDAH) push --digestfile target/image/digest $(IMAGE) docker://$(IMAGE)
	scripts/pin-image-digest.sh --digestfile target/image/digest

crds: ## Regenerate crds/ from the Rust types
	$(CARGO) run --quiet --locked -- crd > crds/support-operator.yaml

check-crds: ## Fail when crds/ differs from the Rust types
	@$(CARGO) run --quiet --locked -- crd | diff -u crds/support-operator.yaml - \
	  || { echo "crds/ is stale: run make crds" >&2; exit 1; }

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## Clippy, warnings as errors
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

bench: ## Benchmarks (medians against a baseline in the same run): evaluation, reconcile, scale (1k–65k nodes; writes BENCHMARKS.md; SCALE_SIZES=1000,5000 limits)
	$(CARGO) bench --locked --bench evaluate
	$(CARGO) bench --locked --bench reconcile
	$(CARGO) bench --locked --bench scale

run: ## Run the operator against the current kubeconfig
	$(CARGO) run --locked -- run --metrics-addr 127.0.0.1:8080

e2e: ## The controller scenarios against the cluster of KUBECONFIG (skipped without one)
	SUPPORT_E2E=1 $(CARGO) test --locked --test e2e -- --test-threads=1
