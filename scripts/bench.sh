#!/usr/bin/env bash
# Runs hack/bench against a real Vault (built once) and bin/provider, or
# against another provider's socket with: scripts/bench.sh -socket PATH [-pid PID].
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"
vault_bin="$("$ROOT_DIR/scripts/build-vault.sh")"
unset VAULT_TOKEN
go run ./hack/bench -provider "$ROOT_DIR/bin/provider" -vault "$vault_bin" "$@"
