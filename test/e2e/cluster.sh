#!/usr/bin/env bash
# A Kubernetes control plane for the end-to-end tests, without containers:
# the real kube-apiserver v1.36.3 with an embedded etcd (tools/kube), plus the
# Secrets Store CSI driver's CRDs and CSIDriver object. No kubelet, scheduler
# or controller-manager runs: create ServiceAccounts yourself, and give Pods a
# spec.nodeName (node-1) so pod-bound TokenRequests work.
#
#   test/e2e/cluster.sh up STATE_DIR     start it; writes STATE_DIR/env and STATE_DIR/kubeconfig
#   test/e2e/cluster.sh down STATE_DIR   stop everything it (or a test) started, remove STATE_DIR
#
# Every process listens on 127.0.0.1 only. Each process started in its own
# process group has its group id in STATE_DIR/pids/NAME.pid; `down` stops all
# of those groups, so a test that starts e.g. the CSI driver with setsid can
# drop its pid there and leave the cleanup to `down`.
#
# The binaries come from scripts/build-kube.sh and scripts/build-csi-driver.sh
# (cached under .cache; run them beforehand: a cold build takes many minutes).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/lib.sh"

SA_ISSUER=https://kubernetes.default.svc.cluster.local
API_AUDIENCES="$SA_ISSUER,vault"
CSI_DRIVER_NAME=secrets-store.csi.k8s.io
NODE_NAME=node-1
MARKER=.e2e-cluster
# Tunables (environment): E2E_READY_TIMEOUT, E2E_STOP_TIMEOUT (seconds), and
# KUBE_APISERVER_EXTRA_ARGS (more kube-apiserver flags, split on spaces,
# e.g. "-v=4 --feature-gates=...").
READY_TIMEOUT=${E2E_READY_TIMEOUT:-120}
STOP_TIMEOUT=${E2E_STOP_TIMEOUT:-20}

usage() {
	printf 'usage: %s up|down STATE_DIR\n' "$0" >&2
	exit 2
}

# abs_path DIR: DIR made absolute (it need not exist).
abs_path() {
	case $1 in
	/*) printf '%s\n' "${1%/}" ;;
	*) printf '%s/%s\n' "$PWD" "${1%/}" ;;
	esac
}

# group_alive PGID: whether any process of the group still runs. Right after
# `setsid CMD &` the child may not have made its group yet: check the leader
# itself too.
group_alive() {
	kill -0 -- "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null
}

# signal_group SIGNAL PGID: sends SIGNAL to the group (or its leader alone,
# if the group is not made yet).
signal_group() {
	kill "-$1" -- "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null || true
}

# stop_processes STATE: SIGTERM, then SIGKILL after $STOP_TIMEOUT s, every
# process group listed in STATE/pids/*.pid.
stop_processes() {
	local state=$1 f pgid name deadline
	shopt -s nullglob
	local files=("$state"/pids/*.pid)
	shopt -u nullglob
	for f in "${files[@]}"; do
		pgid=$(<"$f")
		name=$(basename "$f" .pid)
		[[ $pgid =~ ^[0-9]+$ && $pgid -gt 1 ]] || {
			log "ignoring $f: not a process group id"
			continue
		}
		if group_alive "$pgid"; then
			log "stopping $name (process group $pgid)"
			signal_group TERM "$pgid"
		fi
	done
	deadline=$((SECONDS + STOP_TIMEOUT))
	for f in "${files[@]}"; do
		pgid=$(<"$f")
		[[ $pgid =~ ^[0-9]+$ && $pgid -gt 1 ]] || continue
		while group_alive "$pgid" && ((SECONDS < deadline)); do
			sleep 0.2
		done
		if group_alive "$pgid"; then
			log "killing $(basename "$f" .pid) (process group $pgid): still running after ${STOP_TIMEOUT}s"
			signal_group KILL "$pgid"
		fi
		rm -f "$f"
	done
}

# unmount_under STATE: unmounts anything mounted below STATE (the CSI driver
# mounts a tmpfs at each target path), deepest first.
unmount_under() {
	local state=$1 mnt
	awk -v p="$state/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r mnt; do
			log "unmounting $mnt"
			umount "$mnt" 2>/dev/null || umount -l "$mnt" || true
		done
}

# wait_for DESCRIPTION TIMEOUT PGID CMD...: runs CMD every 0.5 s until it
# succeeds; fails if PGID's process dies or TIMEOUT seconds pass.
wait_for() {
	local what=$1 timeout=$2 pgid=$3
	shift 3
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		group_alive "$pgid" || return 1
		((SECONDS < deadline)) || {
			log "timed out after ${timeout}s waiting for $what"
			return 1
		}
		sleep 0.5
	done
}

# log_tail FILE: the API server's last log lines, without the embedded etcd's
# JSON lines (its shutdown noise would hide the API server's own error).
log_tail() {
	grep -v '^{"level"' "$1" | tail -n 20 || true
}

UP_STATE=""

# on_up_exit: EXIT trap while `up` runs; stops what it started on failure.
on_up_exit() {
	local rc=$?
	if [[ -n $UP_STATE ]]; then
		log "up failed: stopping what was started; logs in $UP_STATE/logs; remove with: $0 down $UP_STATE"
		stop_processes "$UP_STATE"
	fi
	exit "$rc"
}

cmd_up() {
	local state
	state=$(abs_path "$1")
	if [[ -f $state/env ]]; then
		die "$state/env exists: the cluster is up already (run: $0 down $state)"
	fi
	if [[ -d $state && -n $(ls -A "$state") ]]; then
		die "$state is not empty: give a new or empty directory (after a failed up: $0 down $state)"
	fi
	command -v openssl >/dev/null || die "openssl is needed (apt-get install openssl)"

	log "getting binaries (cached builds)"
	local bins apiserver kubectl csi_driver crd_dir
	bins=$("$ROOT_DIR/scripts/build-kube.sh")
	apiserver=$(sed -n 1p <<<"$bins")
	kubectl=$(sed -n 2p <<<"$bins")
	controller_manager=$(sed -n 3p <<<"$bins")
	csi_driver=$("$ROOT_DIR/scripts/build-csi-driver.sh")
	crd_dir="$CACHE_DIR/csi-driver-v1.6.0/crds"
	[[ -x $apiserver && -x $kubectl && -x $csi_driver ]] || die "a binary is missing: $apiserver $kubectl $csi_driver"

	mkdir -p "$state"/{certs,logs,pids,providers,kube-cache}
	chmod 0700 "$state"
	: >"$state/$MARKER"
	# If anything below fails, stop what was started; the state directory
	# stays for inspection until `down`.
	UP_STATE=$state
	trap on_up_exit EXIT

	log "generating the service-account signing key and the admin token"
	openssl genrsa -out "$state/sa.key" 2048 2>/dev/null
	openssl rsa -in "$state/sa.key" -pubout -out "$state/sa.pub" 2>/dev/null
	local token
	token=$(openssl rand -hex 32)
	printf '%s,admin,admin,"system:masters"\n' "$token" >"$state/tokens.csv"
	chmod 0600 "$state/sa.key" "$state/tokens.csv"

	local port url extra_args=()
	read -r -a extra_args <<<"${KUBE_APISERVER_EXTRA_ARGS:-}"
	port=$(free_port)
	url="https://127.0.0.1:$port"
	log "starting kube-apiserver on $url (log: $state/logs/kube-apiserver.log)"
	# setsid: its own process group (pgid = pid), which `down` stops whole.
	setsid "$apiserver" \
		--embedded-etcd-dir="$state/etcd" \
		--bind-address=127.0.0.1 \
		--advertise-address=127.0.0.1 \
		--secure-port="$port" \
		--cert-dir="$state/certs" \
		--service-account-issuer="$SA_ISSUER" \
		--service-account-key-file="$state/sa.pub" \
		--service-account-signing-key-file="$state/sa.key" \
		--api-audiences="$API_AUDIENCES" \
		--token-auth-file="$state/tokens.csv" \
		--authorization-mode=Node,RBAC \
		--service-cluster-ip-range=10.0.0.0/24 \
		"${extra_args[@]}" \
		</dev/null >"$state/logs/kube-apiserver.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$state/pids/kube-apiserver.pid"

	local start=$SECONDS
	wait_for "the serving certificate" "$READY_TIMEOUT" "$pid" test -s "$state/certs/apiserver.crt" ||
		die "kube-apiserver did not start: $(log_tail "$state/logs/kube-apiserver.log")"
	# apiserver.crt holds the serving certificate then the self-signed CA
	# that issued it: keep the last certificate as the cluster's CA.
	awk '/-----BEGIN CERTIFICATE-----/ { buf = "" } { buf = buf $0 "\n" } /-----END CERTIFICATE-----/ { last = buf } END { printf "%s", last }' \
		"$state/certs/apiserver.crt" >"$state/ca.crt"
	[[ -s $state/ca.crt ]] || die "no certificate in $state/certs/apiserver.crt"

	local kubeconfig="$state/kubeconfig"
	(
		umask 077
		cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: $url
    certificate-authority-data: $(base64 -w0 "$state/ca.crt")
users:
- name: admin
  user:
    token: $token
contexts:
- name: e2e
  context:
    cluster: e2e
    user: admin
    namespace: default
current-context: e2e
EOF
	)
	export KUBECONFIG="$kubeconfig" KUBECACHEDIR="$state/kube-cache"

	wait_for "$url/readyz" "$READY_TIMEOUT" "$pid" "$kubectl" get --raw=/readyz ||
		die "kube-apiserver not ready: $(log_tail "$state/logs/kube-apiserver.log")"
	log "kube-apiserver ready after $((SECONDS - start))s"

	# Only the garbage collector and the namespace controller: owner
	# references then really delete what they own (a synced Secret goes with
	# its pod), and deleted namespaces go away.
	local kcm_port
	kcm_port=$(free_port)
	log "starting kube-controller-manager (garbage collector, namespaces; log: $state/logs/kube-controller-manager.log)"
	setsid "$controller_manager" \
		--kubeconfig="$kubeconfig" \
		--authentication-kubeconfig="$kubeconfig" \
		--authorization-kubeconfig="$kubeconfig" \
		--controllers=garbage-collector-controller,namespace-controller \
		--leader-elect=false \
		--bind-address=127.0.0.1 \
		--secure-port="$kcm_port" \
		--cert-dir="$state/certs/kcm" \
		</dev/null >"$state/logs/kube-controller-manager.log" 2>&1 &
	echo "$!" >"$state/pids/kube-controller-manager.pid"

	log "installing the CSI driver's CRDs and the CSIDriver object"
	shopt -s nullglob
	local crds=("$crd_dir"/*.yaml)
	shopt -u nullglob
	((${#crds[@]} > 0)) || die "no CRDs in $crd_dir"
	local f args=()
	for f in "${crds[@]}"; do args+=(-f "$f"); done
	"$kubectl" apply "${args[@]}" >&2
	"$kubectl" apply -f - >&2 <<EOF
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: $CSI_DRIVER_NAME
spec:
  attachRequired: false
  podInfoOnMount: true
  requiresRepublish: true
  volumeLifecycleModes:
  - Ephemeral
  tokenRequests:
  - audience: vault
  # The driver v1.6.0 reads the tokens from the volume context
  # (csi.storage.k8s.io/serviceAccount.tokens), not from the secrets field.
  serviceAccountTokenInSecrets: false
EOF
	"$kubectl" wait --for=condition=Established --timeout="${READY_TIMEOUT}s" "${args[@]}" >&2

	cat >"$state/env" <<EOF
# Written by test/e2e/cluster.sh up; source it (bash). Removed by down.
export E2E_STATE_DIR=$(printf '%q' "$state")
export KUBECONFIG=$(printf '%q' "$kubeconfig")
export KUBECACHEDIR=$(printf '%q' "$state/kube-cache")
export KUBE_APISERVER_URL=$(printf '%q' "$url")
export KUBE_APISERVER_PORT=$port
export KUBE_CA_FILE=$(printf '%q' "$state/ca.crt")
export KUBE_ADMIN_TOKEN=$token
export KUBE_APISERVER_PID=$pid
export KUBE_APISERVER_LOG=$(printf '%q' "$state/logs/kube-apiserver.log")
export KUBE_SA_ISSUER=$(printf '%q' "$SA_ISSUER")
export KUBE_SA_SIGNING_KEY=$(printf '%q' "$state/sa.key")
export KUBE_SA_PUBLIC_KEY=$(printf '%q' "$state/sa.pub")
export KUBE_NODE_NAME=$NODE_NAME
export KUBE_APISERVER_BIN=$(printf '%q' "$apiserver")
export KUBECTL=$(printf '%q' "$kubectl")
export CSI_DRIVER_BIN=$(printf '%q' "$csi_driver")
export CSI_DRIVER_NAME=$CSI_DRIVER_NAME
export CSI_DRIVER_CRD_DIR=$(printf '%q' "$crd_dir")
export CSI_PROVIDERS_DIR=$(printf '%q' "$state/providers")
export E2E_PIDS_DIR=$(printf '%q' "$state/pids")
EOF
	UP_STATE=""
	trap - EXIT
	log "cluster up in $((SECONDS - start))s: source $state/env (KUBECONFIG=$kubeconfig)"
}

cmd_down() {
	local state
	state=$(abs_path "$1")
	if [[ ! -d $state ]]; then
		log "$state does not exist: nothing to stop"
		return 0
	fi
	[[ -f $state/$MARKER ]] || die "$state was not made by $0 up: refusing to remove it"
	stop_processes "$state"
	unmount_under "$state"
	rm -rf "$state"
	log "cluster down: $state removed"
}

[[ $# -eq 2 && -n $2 ]] || usage
case $1 in
up) cmd_up "$2" ;;
down) cmd_down "$2" ;;
*) usage ;;
esac
