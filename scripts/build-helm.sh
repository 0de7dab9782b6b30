#!/usr/bin/env bash
# Builds helm from the Go module proxy (no binary download) and prints its path.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
install_cached helm v3.22.0 helm.sh/helm/v3/cmd/helm
