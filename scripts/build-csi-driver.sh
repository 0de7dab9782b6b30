#!/usr/bin/env bash
# Builds the real Secrets Store CSI driver v1.6.0 from its Go module
# (tools/csi-driver, with our stand-in for monis.app/mlog) and prints the
# binary's path (.cache/bin/secrets-store-csi-driver-v1.6.0) on stdout.
# Also copies the driver's CRDs from its module into
# .cache/csi-driver-v1.6.0/crds/ (logged on stderr, not printed).
# Cold build: minutes on 2 cores; cached afterwards.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

CSI_DRIVER_VERSION=v1.6.0
CSI_DRIVER_MODULE=sigs.k8s.io/secrets-store-csi-driver
moddir="$ROOT_DIR/tools/csi-driver"
crd_dir="$CACHE_DIR/csi-driver-$CSI_DRIVER_VERSION/crds"

bin=$(build_cached secrets-store-csi-driver "$CSI_DRIVER_VERSION" "$moddir" \
	"$CSI_DRIVER_MODULE/cmd/secrets-store-csi-driver" \
	"-X $CSI_DRIVER_MODULE/pkg/version.BuildVersion=$CSI_DRIVER_VERSION")

src=$(cd "$moddir" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' "$CSI_DRIVER_MODULE")
[[ -n "$src" && -d "$src/deploy" ]] || die "module $CSI_DRIVER_MODULE not found in the module cache"
shopt -s nullglob
crds=("$src"/deploy/secrets-store.csi.x-k8s.io_*.yaml)
shopt -u nullglob
((${#crds[@]} > 0)) || die "no CRDs in $src/deploy"
mkdir -p "$crd_dir"
# Files in the module cache are read-only: install gives writable copies.
install -m 0644 "${crds[@]}" "$crd_dir/"
log "CRDs of $CSI_DRIVER_MODULE $CSI_DRIVER_VERSION in $crd_dir (${#crds[@]} files)"

echo "$bin"
