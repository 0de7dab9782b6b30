#!/usr/bin/env bash
# Builds the real Vault server from its Go module (tools/vault) and prints its path.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
VAULT_VERSION=1.21.0
build_cached vault "$VAULT_VERSION" "$ROOT_DIR/tools/vault" .
