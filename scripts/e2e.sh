#!/usr/bin/env bash
# Runs the end-to-end suite (test/bats) on real parts: kube-apiserver,
# secrets-store-csi-driver v1.6.0, Vault, PostgreSQL and our provider, all on
# 127.0.0.1. Needs root (the driver mounts tmpfs). Cold builds of the API
# server and the driver take minutes; they are cached under .cache.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"

[[ $(id -u) -eq 0 ]] || die "the e2e suite needs root: the CSI driver mounts tmpfs volumes"
"$ROOT_DIR/scripts/deps.sh"
VCP_VAULT_BIN="$("$ROOT_DIR/scripts/build-vault.sh")"
"$ROOT_DIR/scripts/build-kube.sh" >/dev/null
"$ROOT_DIR/scripts/build-csi-driver.sh" >/dev/null
VCP_HELM_BIN="$("$ROOT_DIR/scripts/build-helm.sh")"
log "building the provider and the kubelet stand-in"
make -s build
mkdir -p bin
go build -o bin/e2e-kubelet ./test/e2e/kubelet
export VCP_VAULT_BIN VCP_HELM_BIN VCP_PROVIDER_BIN="$ROOT_DIR/bin/provider" VCP_KUBELET_BIN="$ROOT_DIR/bin/e2e-kubelet"
unset VAULT_TOKEN VAULT_ADDR KUBECONFIG

log "running test/bats"
out="$CACHE_DIR/e2e-last.tap"
set +e
if (($# == 0)); then set -- test/bats; fi
bats --timing "$@" | tee "$out"
rc=${PIPESTATUS[0]}
set -e
passed=$(grep -c '^ok ' "$out" || true)
failed=$(grep -c '^not ok ' "$out" || true)
echo "e2e: $passed passed, $failed failed"
exit "$rc"
