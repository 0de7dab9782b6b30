# vault-csi-provider — see README.md.
SHELL   := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/vault-csi-provider/vault-csi-provider/internal/buildinfo.Version=$(VERSION)

.PHONY: all build demo test e2e image vault deps fmt vet clean bench

all: build

## build: the provider binary, bin/provider
build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/provider ./cmd/provider

## demo: real Vault + provider + one Mount through the driver's client path
demo:
	@scripts/demo.sh

## test: gofmt, vet, unit and integration tests (real Vault, real PostgreSQL), -race, then make e2e
test:
	@scripts/test.sh

## e2e: the end-to-end suite (test/bats) on a real kube-apiserver, CSI driver v1.6.0 and Vault (root)
e2e:
	@scripts/e2e.sh

## image: the container image as a tarball, built and validated without a container engine
image:
	@scripts/build-image.sh

## vault: build (once) the real Vault server used by tests and the demo
vault:
	@scripts/build-vault.sh

## deps: install the Debian packages the tests need
deps:
	@scripts/deps.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	go vet ./...

clean:
	rm -rf bin

## bench: load the provider like the driver does and compare with direct Vault reads
bench: build
	@scripts/bench.sh $(BENCH_ARGS)
