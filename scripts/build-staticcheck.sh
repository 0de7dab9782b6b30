#!/usr/bin/env bash
# Builds staticcheck from the Go module proxy and prints its path.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
install_cached staticcheck v0.8.2 honnef.co/go/tools/cmd/staticcheck
