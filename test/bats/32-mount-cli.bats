#!/usr/bin/env bats
# Issue 7: `provider mount` checks a SecretProviderClass from outside the
# cluster, against the real API server's tokens and the real Vault.

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v kv put secret/cli/app password=cli-pw username=cli-user >/dev/null
	app cli app cli 'path "secret/data/cli/*" { capabilities = ["read"] }'
	cat >"$BATS_FILE_TMPDIR/spc.yaml" <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: cli, namespace: cli}
spec:
  provider: vault
  parameters:
    roleName: cli
    objects: |
      - {objectName: password, secretPath: secret/data/cli/app, secretKey: password, filePermission: 0400}
      - {objectName: username, secretPath: secret/data/cli/app, secretKey: username}
YAML
	k apply -f "$BATS_FILE_TMPDIR/spc.yaml" >/dev/null
	pod cli app app secrets=cli
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

@test "provider mount: a real service account token, values hidden, files written with -out" {
	k -n cli create token app --audience vault >"$BATS_TEST_TMPDIR/token"
	run env -u VAULT_TOKEN "$PROVIDER_BIN" mount -vault-addr "$VAULT_ADDR" -token-file "$BATS_TEST_TMPDIR/token" \
		-pod-namespace cli -service-account app "$BATS_FILE_TMPDIR/spc.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"password"*"0400"*"<hidden, 6 bytes>"* ]]
	[[ $output != *"cli-pw"* ]]
	run env -u VAULT_TOKEN "$PROVIDER_BIN" mount -vault-addr "$VAULT_ADDR" -token-file "$BATS_TEST_TMPDIR/token" \
		-pod-namespace cli -service-account app -out "$BATS_TEST_TMPDIR/out" "$BATS_FILE_TMPDIR/spc.yaml"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(cat "$BATS_TEST_TMPDIR/out/password")" = "cli-pw" ]
	[ "$(stat -L -c %a "$BATS_TEST_TMPDIR/out/password")" = "400" ]
}

@test "provider mount: the pod from the cluster and the TokenRequest fallback" {
	k -n cli get pod app -o yaml >"$BATS_TEST_TMPDIR/pod.yaml"
	run env -u VAULT_TOKEN "$PROVIDER_BIN" mount -vault-addr "$VAULT_ADDR" -kubeconfig "$KUBECONFIG" \
		-pod "$BATS_TEST_TMPDIR/pod.yaml" -show-values "$BATS_FILE_TMPDIR/spc.yaml"
	echo "$output"
	# The fallback token carries the API server's default audiences, which
	# include vault here, so the audience-bound role accepts it.
	[ "$status" -eq 0 ]
	[[ $output == *'"cli-user"'* ]]
}

@test "provider mount: a wrong role is PermissionDenied with exit status 1" {
	k -n cli create token app --audience vault >"$BATS_TEST_TMPDIR/token"
	sed 's/roleName: cli/roleName: cli-typo/' "$BATS_FILE_TMPDIR/spc.yaml" >"$BATS_TEST_TMPDIR/bad.yaml"
	run env -u VAULT_TOKEN "$PROVIDER_BIN" mount -vault-addr "$VAULT_ADDR" -token-file "$BATS_TEST_TMPDIR/token" \
		-pod-namespace cli -service-account app "$BATS_TEST_TMPDIR/bad.yaml"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == "PermissionDenied: "*'role "cli-typo"'* ]]
}
