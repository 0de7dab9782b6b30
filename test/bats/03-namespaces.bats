#!/usr/bin/env bats
# Cases 3, 4 and 8: namespaces bound the SecretProviderClass, a pod may mount
# two classes, and the wrong service account is refused by Vault.

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v kv put secret/ns/one value=one >/dev/null
	v kv put secret/ns/two value=two >/dev/null
	app ns-a app ns-a 'path "secret/data/ns/*" { capabilities = ["read"] }'
	k create namespace ns-b >/dev/null
	k -n ns-a create serviceaccount intruder >/dev/null
	for n in one two; do
		k apply -f - >/dev/null <<YAML
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: spc-$n, namespace: ns-a}
spec:
  provider: vault
  parameters:
    roleName: ns-a
    objects: |
      - {objectName: $n, secretPath: secret/data/ns/$n, secretKey: value}
YAML
	done
	# Only in ns-b: a pod in ns-a must not be able to use it.
	k apply -f - >/dev/null <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: only-in-b, namespace: ns-b}
spec:
  provider: vault
  parameters:
    roleName: ns-a
    objects: |
      - {objectName: one, secretPath: secret/data/ns/one, secretKey: value}
YAML
	pod ns-a two-classes app first=spc-one second=spc-two
	pod ns-a borrower app secrets=only-in-b
	pod ns-a intruder intruder secrets=spc-one
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

@test "a SecretProviderClass of another namespace is not usable" {
	run publish ns-a borrower secrets
	[ "$status" -ne 0 ]
	echo "$output"
	[[ $output == *"only-in-b"*"not found"* ]]
	dir=$(target ns-a borrower secrets)
	run grep -q " $dir " /proc/mounts
	[ "$status" -ne 0 ]
}

@test "a pod with two SecretProviderClasses gets both volumes" {
	run publish ns-a two-classes first
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	run publish ns-a two-classes second
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(cat "$(target ns-a two-classes first)/one")" = "one" ]
	[ "$(cat "$(target ns-a two-classes second)/two")" = "two" ]
	[ ! -e "$(target ns-a two-classes first)/two" ]
	[ "$(spcps ns-a two-classes | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ]
}

@test "wrong service account: PermissionDenied naming the role" {
	run publish ns-a intruder secrets
	[ "$status" -ne 0 ]
	echo "$output"
	[[ $output == *"PermissionDenied"* ]]
	[[ $output == *'role "ns-a"'* ]]
	[ ! -e "$(target ns-a intruder secrets)/one" ]
}
