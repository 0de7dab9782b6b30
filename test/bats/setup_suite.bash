# Brings up the whole world the end-to-end cases run in, once per suite:
# the real kube-apiserver (test/e2e/cluster.sh), a Vault dev server with the
# kubernetes and jwt auth methods pointed at it, a PostgreSQL cluster for
# database credentials, the real Secrets Store CSI driver v1.6.0 and our
# provider on <providers dir>/vault.sock. Everything listens on 127.0.0.1 and
# is torn down by teardown_suite.

# shellcheck shell=bash

setup_suite() {
	set -euo pipefail
	export E2E_ROOT
	E2E_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	# shellcheck source=../../scripts/lib.sh
	source "$E2E_ROOT/scripts/lib.sh"

	E2E_STATE_DIR="$(mktemp -d /tmp/vcp-e2e.XXXXXX)"
	export E2E_STATE_DIR
	"$E2E_ROOT/test/e2e/cluster.sh" up "$E2E_STATE_DIR" >&3 2>&1
	# shellcheck disable=SC1091
	source "$E2E_STATE_DIR/env"

	mkdir -p "$E2E_STATE_DIR/logs" "$E2E_STATE_DIR/kubelet"
	{
		echo "export VAULT_BIN=$(printf '%q' "$VCP_VAULT_BIN")"
		echo "export PROVIDER_BIN=$(printf '%q' "$VCP_PROVIDER_BIN")"
		echo "export KUBELET_BIN=$(printf '%q' "$VCP_KUBELET_BIN")"
		echo "export KUBELET_ROOT=$(printf '%q' "$E2E_STATE_DIR/kubelet")"
		echo "export CSI_ENDPOINT=$(printf '%q' "unix://$E2E_STATE_DIR/csi.sock")"
		echo "export PROVIDER_SOCKET=$(printf '%q' "$CSI_PROVIDERS_DIR/vault.sock")"
		echo "export PROVIDER_NAMESPACE=vault-csi"
		echo "export HMAC_SECRET=vault-csi-provider-hmac-key"
	} >>"$E2E_STATE_DIR/env"
	# shellcheck disable=SC1091
	source "$E2E_STATE_DIR/env"
	# shellcheck source=helpers.bash
	source "$BATS_TEST_DIRNAME/helpers.bash"

	start_vault
	start_postgres
	configure_vault
	"$KUBECTL" create namespace "$PROVIDER_NAMESPACE" >/dev/null
	start_driver
	start_provider
	log "e2e world up: state in $E2E_STATE_DIR"
}

teardown_suite() {
	if [[ -n ${E2E_STATE_DIR:-} && -d $E2E_STATE_DIR ]]; then
		# shellcheck source=helpers.bash
		source "$BATS_TEST_DIRNAME/helpers.bash"
		stop_postgres || true
		# Unmount whatever tmpfs a failed case left behind.
		grep -o " $E2E_STATE_DIR/kubelet/[^ ]*" /proc/mounts | while read -r m; do umount "$m" 2>/dev/null || true; done
		if [[ -n ${E2E_KEEP_STATE:-} ]]; then
			echo "# keeping $E2E_STATE_DIR (E2E_KEEP_STATE set)" >&3
			stop_bg provider; stop_bg csi-driver; stop_bg vault
		else
			"$E2E_ROOT/test/e2e/cluster.sh" down "$E2E_STATE_DIR" >&3 2>&1 || true
		fi
	fi
}
