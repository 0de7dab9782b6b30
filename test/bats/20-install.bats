#!/usr/bin/env bats
# Issue 5 deliverables checked against the real API server: the Helm chart
# lints and renders, its objects (and the generated plain manifests) are
# accepted by kube-apiserver, and every example is accepted with the
# driver's CRDs installed.

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	k create namespace examples >/dev/null
	k -n examples create serviceaccount app >/dev/null
}

setup() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	chart="$E2E_ROOT/charts/vault-csi-provider"
}

@test "helm lint: no warnings or errors" {
	run "$VCP_HELM_BIN" lint --strict "$chart"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output != *"[WARNING]"* && $output != *"[ERROR]"* ]]
}

@test "the chart's objects are accepted by the API server (defaults and every option)" {
	for args in "" \
		"--set vault.tls.caCert.secretName=vault-ca --set vault.tls.clientCertSecretName=vault-client --set vault.namespace=team-a --set logging.format=json --set tokenRequestFallback=false --set extraArgs[0]=-fetch-concurrency=8" \
		"--set vault.tls.caCert.configMapName=vault-ca --set metrics.service.enabled=false --set serviceAccount.create=false --set serviceAccount.name=default"; do
		# shellcheck disable=SC2086
		"$VCP_HELM_BIN" template vcp "$chart" --namespace "$PROVIDER_NAMESPACE" --kube-version v1.36.3 $args >"$BATS_TEST_TMPDIR/rendered.yaml"
		run k apply --dry-run=server -f "$BATS_TEST_TMPDIR/rendered.yaml"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ $output == *"daemonset.apps/vcp-vault-csi-provider created (server dry run)"* ]]
	done
}

@test "chart values are validated by values.schema.json" {
	run "$VCP_HELM_BIN" template vcp "$chart" --set cache.refreshFraction=2
	[ "$status" -ne 0 ]
	[[ $output == *"refreshFraction"* ]]
	run "$VCP_HELM_BIN" template vcp "$chart" --set logging.format=xml
	[ "$status" -ne 0 ]
	run "$VCP_HELM_BIN" template vcp "$chart" --set vault.address=vault:8200
	[ "$status" -ne 0 ]
}

@test "the DaemonSet is hardened and probes the health endpoint" {
	"$VCP_HELM_BIN" template vcp "$chart" --namespace x --kube-version v1.36.3 -s templates/daemonset.yaml >"$BATS_TEST_TMPDIR/ds.yaml"
	k create --dry-run=client -o json -f "$BATS_TEST_TMPDIR/ds.yaml" >"$BATS_TEST_TMPDIR/ds.json"
	run python3 - "$BATS_TEST_TMPDIR/ds.json" <<'PY'
import json, sys
ds = json.load(open(sys.argv[1]))
pod = ds["spec"]["template"]["spec"]
c = pod["containers"][0]
sc = c["securityContext"]
assert sc["readOnlyRootFilesystem"] is True, sc
assert sc["allowPrivilegeEscalation"] is False, sc
assert sc["capabilities"]["drop"] == ["ALL"], sc
assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
assert pod["priorityClassName"] == "system-node-critical"
assert pod["nodeSelector"]["kubernetes.io/os"] == "linux"
assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
vols = {v["name"]: v for v in pod["volumes"]}
assert vols["providers"]["hostPath"]["path"] == "/var/run/secrets-store-csi-providers"
assert "-endpoint=/provider/vault.sock" in c["args"]
PY
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "deployment/ is the chart rendered with defaults, and the API server accepts it" {
	run "$E2E_ROOT/scripts/gen-manifests.sh" --check
	echo "$output"
	[ "$status" -eq 0 ]
	run k apply --dry-run=server -f "$E2E_ROOT/deployment/vault-csi-provider.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "every example is accepted by the API server with the driver's CRDs" {
	for f in "$E2E_ROOT"/examples/*.yaml; do
		run k -n examples apply --dry-run=server -f "$f"
		echo "$f: $output"
		[ "$status" -eq 0 ]
		[[ $output == *"secretproviderclass.secrets-store.csi.x-k8s.io/"*"created (server dry run)"* ]]
	done
}
