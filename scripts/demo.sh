#!/usr/bin/env bash
# Builds what the demo needs and runs it (see hack/demo).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"
vault_bin="$("$ROOT_DIR/scripts/build-vault.sh")"
make -s build >&2
unset VAULT_TOKEN
go run ./hack/demo -provider "$ROOT_DIR/bin/provider" -vault "$vault_bin"
