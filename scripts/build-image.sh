#!/usr/bin/env bash
# Builds the provider's container image as a tarball, without a container
# engine (tools/image: go-containerregistry), and validates it. The Dockerfile
# builds the same image where an engine exists.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
make -s build
mkdir -p "$CACHE_DIR/image"
out="$CACHE_DIR/image/vault-csi-provider.tar"
(cd tools/image && GOFLAGS=-mod=mod go build -o "$BIN_CACHE/image-builder" .)
"$BIN_CACHE/image-builder" -binary bin/provider -tag "vault-csi-provider:${version//+/-}" -out "$out"
