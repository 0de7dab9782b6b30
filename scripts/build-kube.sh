#!/usr/bin/env bash
# Builds the real kube-apiserver (with an optional embedded etcd, see
# tools/kube/cmd/kube-apiserver) and kubectl, both Kubernetes v1.36.3, from
# their Go module (tools/kube), and prints their paths, one a line:
#   line 1: kube-apiserver
#   line 2: kubectl
#   line 3: kube-controller-manager
# Cached in .cache/bin/{kube-apiserver,kubectl}-v1.36.3 after the first build.
# Cold: many minutes on 2 cores (the compiler peaks near 2.5 GB RSS).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

KUBE_VERSION=v1.36.3
KUBE_MINOR=${KUBE_VERSION#v1.}
KUBE_MINOR=${KUBE_MINOR%%.*}

# Without these the binaries report v0.0.0-master and clients (kubectl's
# version skew check, client-go discovery) choke on the version string.
version_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	version_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
done

moddir="$ROOT_DIR/tools/kube"
build_cached kube-apiserver "$KUBE_VERSION" "$moddir" ./cmd/kube-apiserver "$version_ldflags"
build_cached kubectl "$KUBE_VERSION" "$moddir" ./cmd/kubectl "$version_ldflags"
build_cached kube-controller-manager "$KUBE_VERSION" "$moddir" ./cmd/kube-controller-manager "$version_ldflags"
