#!/usr/bin/env bats
# Case 9: a custom token audience. The CSIDriver asks kubelet for tokens for
# two audiences (vault and vault-custom); a Vault role that only accepts
# vault-custom lets in the SecretProviderClass that picks that token with
# `audience: vault-custom`, and refuses the same class picking "vault".

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	csidriver_tokens >"$BATS_FILE_TMPDIR/csidriver-tokens.json"
	csidriver_set_tokens '{"tokenRequests":[{"audience":"vault"},{"audience":"vault-custom"}]}'
	v kv put secret/custom-aud/app token=custom-aud-value >/dev/null
	k create namespace custom-aud >/dev/null
	k -n custom-aud create serviceaccount app >/dev/null
	echo 'path "secret/data/custom-aud/*" { capabilities = ["read"] }' | v policy write custom-aud - >/dev/null
	# Written directly: app() would pin audience=vault.
	v write auth/kubernetes/role/custom-aud bound_service_account_names=app \
		bound_service_account_namespaces=custom-aud policies=custom-aud audience=vault-custom ttl=1h >/dev/null
	local aud
	for aud in vault-custom vault; do
		k apply -f - >/dev/null <<YAML
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: aud-$aud, namespace: custom-aud}
spec:
  provider: vault
  parameters:
    roleName: custom-aud
    audience: $aud
    objects: |
      - {objectName: token, secretPath: secret/data/custom-aud/app, secretKey: token}
YAML
	done
	pod custom-aud custom app secrets=aud-vault-custom
	pod custom-aud default app secrets=aud-vault
}

teardown_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	unpublish custom-aud custom secrets >/dev/null 2>&1 || true
	csidriver_set_tokens "$(cat "$BATS_FILE_TMPDIR/csidriver-tokens.json")"
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

@test "custom audience: the CSIDriver requests tokens for both audiences" {
	[ "$(k get csidriver "$CSI_DRIVER_NAME" -o jsonpath='{.spec.tokenRequests[*].audience}')" = "vault vault-custom" ]
}

@test "custom audience: audience vault-custom logs in to a role bound to vault-custom" {
	logins=$(audit_count auth/kubernetes/login)
	run publish custom-aud custom secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dir=$(target custom-aud custom secrets)
	[ "$(cat "$dir/token")" = "custom-aud-value" ]
	[ "$(audit_count auth/kubernetes/login)" -eq $((logins + 1)) ]
	[ "$(spcps_versions custom-aud custom | wc -l)" -eq 1 ]
}

@test "custom audience: the same class with audience vault is refused by that role" {
	run publish custom-aud default secrets
	[ "$status" -ne 0 ]
	echo "$output"
	[[ $output == *"code = PermissionDenied"* ]]
	[[ $output == *'role "custom-aud"'* ]]
	[[ $output == *"aud"* ]]
	dir=$(target custom-aud default secrets)
	[ "$(grep -c " $dir " /proc/mounts)" -eq 0 ]
	[ ! -e "$dir/token" ]
}
