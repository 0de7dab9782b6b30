#!/usr/bin/env bats
# Case 13: without tokenRequests in the CSIDriver the driver passes no token,
# and the provider mints a pod-bound one itself through the TokenRequest API
# (its -kubeconfig is admin). Such a token carries the API server's default
# audiences (--api-audiences: the issuer and "vault"), while kubelet's token
# for the CSIDriver carries only "vault". A Vault role bound to the issuer
# audience therefore tells the two apart: it refuses the mount while the
# CSIDriver requests tokens, and accepts it once the provider's own token is
# used.

NS=token-fallback

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	csidriver_tokens >"$BATS_FILE_TMPDIR/csidriver-tokens.json"
	v kv put secret/token-fallback/app value=fallback-value >/dev/null
	k create namespace token-fallback >/dev/null
	k -n token-fallback create serviceaccount app >/dev/null
	echo 'path "secret/data/token-fallback/*" { capabilities = ["read"] }' | v policy write token-fallback - >/dev/null
	v write auth/kubernetes/role/token-fallback bound_service_account_names=app \
		bound_service_account_namespaces=token-fallback policies=token-fallback \
		audience="$KUBE_SA_ISSUER" ttl=1h >/dev/null
	k apply -f - >/dev/null <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: fallback, namespace: token-fallback}
spec:
  provider: vault
  parameters:
    roleName: token-fallback
    objects: |
      - {objectName: value, secretPath: secret/data/token-fallback/app, secretKey: value}
YAML
	pod token-fallback app app secrets=fallback
}

teardown_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	unpublish token-fallback app secrets >/dev/null 2>&1 || true
	csidriver_set_tokens "$(cat "$BATS_FILE_TMPDIR/csidriver-tokens.json")"
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

@test "token fallback: with tokenRequests the driver's audience-vault token is refused by the issuer-audience role" {
	[ "$(k get csidriver "$CSI_DRIVER_NAME" -o jsonpath='{.spec.tokenRequests[*].audience}')" = "vault" ]
	run publish $NS app secrets
	[ "$status" -ne 0 ]
	echo "$output"
	[[ $output == *"code = PermissionDenied"* ]]
	[[ $output == *'role "token-fallback"'* ]]
	[[ $output == *"aud"* ]]
	dir=$(target $NS app secrets)
	[ "$(grep -c " $dir " /proc/mounts)" -eq 0 ]
}

@test "token fallback: without tokenRequests the provider's own pod-bound token logs in" {
	csidriver_set_tokens '{"tokenRequests":null,"serviceAccountTokenInSecrets":null}'
	[ -z "$(k get csidriver "$CSI_DRIVER_NAME" -o jsonpath='{.spec.tokenRequests}')" ]
	# The failed publish left the target directory behind: the driver skips
	# (and reports success for) a publish within its 2s poll interval of the
	# directory's last change.
	sleep 2.5
	logins=$(audit_count auth/kubernetes/login update)
	run publish $NS app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dir=$(target $NS app secrets)
	grep -q " $dir tmpfs " /proc/mounts
	[ "$(cat "$dir/value")" = "fallback-value" ]
	[ "$(audit_count auth/kubernetes/login update)" -eq $((logins + 1)) ]
	[ "$(spcps_versions $NS app | wc -l)" -eq 1 ]
}
