#!/usr/bin/env bats
# Case 10: the jwt auth method. With `vaultAuthMountPath: jwt` the provider
# logs in at auth/jwt/login with the pod's token (audience vault), which
# Vault checks against the API server's service account key, issuer,
# subject and audience; the kubernetes auth mount is not used.

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v kv put secret/jwt-auth/app password=jwt-pw >/dev/null
	k create namespace jwt-auth >/dev/null
	k -n jwt-auth create serviceaccount app >/dev/null
	k -n jwt-auth create serviceaccount other >/dev/null
	echo 'path "secret/data/jwt-auth/*" { capabilities = ["read"] }' | v policy write jwt-auth - >/dev/null
	v write auth/jwt/role/jwt-auth role_type=jwt user_claim=sub \
		bound_subject=system:serviceaccount:jwt-auth:app bound_audiences=vault \
		policies=jwt-auth ttl=1h >/dev/null
	k apply -f - >/dev/null <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: jwt, namespace: jwt-auth}
spec:
  provider: vault
  parameters:
    roleName: jwt-auth
    vaultAuthMountPath: jwt
    objects: |
      - {objectName: password, secretPath: secret/data/jwt-auth/app, secretKey: password}
YAML
	pod jwt-auth app app secrets=jwt
	pod jwt-auth other other secrets=jwt
}

teardown_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	unpublish jwt-auth app secrets >/dev/null 2>&1 || true
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

@test "jwt auth: mount works and Vault logs a login at auth/jwt/login only" {
	jwt_logins=$(audit_count auth/jwt/login update)
	kube_logins=$(audit_count auth/kubernetes/login)
	run publish jwt-auth app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(cat "$(target jwt-auth app secrets)/password")" = "jwt-pw" ]
	[ "$(audit_count auth/jwt/login update)" -eq $((jwt_logins + 1)) ]
	[ "$(audit_count auth/kubernetes/login)" -eq "$kube_logins" ]
}

@test "jwt auth: another service account's token does not match bound_subject" {
	run publish jwt-auth other secrets
	[ "$status" -ne 0 ]
	echo "$output"
	[[ $output == *"code = PermissionDenied"* ]]
	[[ $output == *'role "jwt-auth" at auth/jwt'* ]]
	[ ! -e "$(target jwt-auth other secrets)/password" ]
}
