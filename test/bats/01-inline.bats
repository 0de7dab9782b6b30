#!/usr/bin/env bats
# Case 1: an inline volume gets its files with the right contents and modes.

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v kv put secret/inline/app username=inline-user password='p@ss w0rd' >/dev/null
	app inline app inline 'path "secret/data/inline/*" { capabilities = ["read"] }'
	k apply -f - >/dev/null <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: inline, namespace: inline}
spec:
  provider: vault
  parameters:
    roleName: inline
    objects: |
      - objectName: username
        secretPath: secret/data/inline/app
        secretKey: username
      - objectName: nested/dir/password
        secretPath: secret/data/inline/app
        secretKey: password
        filePermission: 0600
YAML
	pod inline app app secrets=inline
}

setup() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
}

@test "inline volume: files, contents, default and per-object modes, nested names" {
	run publish inline app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dir=$(target inline app secrets)
	grep -q " $dir tmpfs " /proc/mounts
	[ "$(cat "$dir/username")" = "inline-user" ]
	[ "$(cat "$dir/nested/dir/password")" = "p@ss w0rd" ]
	[ "$(stat -L -c %a "$dir/username")" = "644" ]
	[ "$(stat -L -c %a "$dir/nested/dir/password")" = "600" ]
}

@test "unpublish leaves no tmpfs mount and no files behind" {
	dir=$(target inline app secrets)
	run unpublish inline app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	run grep -q " $dir " /proc/mounts
	[ "$status" -ne 0 ]
	[ ! -e "$dir/username" ]
}
