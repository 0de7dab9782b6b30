#!/usr/bin/env bash
# Builds staticcheck from the Go module proxy and prints its path.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
STATICCHECK_VERSION=v0.8.2
out="$BIN_CACHE/staticcheck-$STATICCHECK_VERSION"
if [[ ! -x $out ]]; then
	log "building staticcheck $STATICCHECK_VERSION"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	GOBIN="$tmp" GOFLAGS=-mod=mod go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" >&2
	mv "$tmp/staticcheck" "$out"
fi
echo "$out"
