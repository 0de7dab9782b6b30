#!/usr/bin/env bats
# Case 12: rotation through kubelet's republish (requiresRepublish). A
# changed Vault secret is rewritten into the volume, its object version in
# the SecretProviderClassPodStatus changes and the synced Kubernetes Secret
# follows; an unchanged secret keeps its version and its files are not
# rewritten.

NS=rotation

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v kv put secret/rotation/app username=rot-user password=rot-v1 >/dev/null
	app rotation app rotation 'path "secret/data/rotation/*" { capabilities = ["read"] }'
	k apply -f - >/dev/null <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: rotation, namespace: rotation}
spec:
  provider: vault
  secretObjects:
  - secretName: rotation-synced
    type: Opaque
    data:
    - {objectName: password, key: password}
    - {objectName: username, key: username}
  parameters:
    roleName: rotation
    objects: |
      - {objectName: username, secretPath: secret/data/rotation/app, secretKey: username}
      - {objectName: password, secretPath: secret/data/rotation/app, secretKey: password}
YAML
	pod rotation app app secrets=rotation
}

teardown_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	unpublish rotation app secrets >/dev/null 2>&1 || true
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

# synced KEY VALUE: the synced Secret holds VALUE under KEY.
synced() {
	[ "$(k -n $NS get secret rotation-synced -o jsonpath="{.data.$1}" | base64 -d)" = "$2" ]
}

# version OBJECT: the object's version in the pod's SPCPS.
version() {
	spcps_versions $NS app | sed -n "s|^rotation/$1=||p"
}

# The driver skips a republish within --rotation-poll-interval (2s) of the
# volume's last write: wait that out.
wait_poll_interval() { sleep 2.5; }

@test "rotation: a changed secret is rewritten on republish; its version and the synced Secret follow" {
	run publish $NS app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dir=$(target $NS app secrets)
	[ "$(cat "$dir/password")" = "rot-v1" ]
	wait_for 30 synced password rot-v1
	synced username rot-user
	pw1=$(version password)
	user1=$(version username)
	[ -n "$pw1" ]
	[ -n "$user1" ]
	data1=$(readlink "$dir/..data")

	v kv put secret/rotation/app username=rot-user password=rot-v2 >/dev/null
	wait_poll_interval
	reads=$(audit_count secret/data/rotation/app read)
	run publish $NS app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(audit_count secret/data/rotation/app read)" -eq $((reads + 1)) ]
	[ "$(cat "$dir/password")" = "rot-v2" ]
	[ "$(cat "$dir/username")" = "rot-user" ]
	[ "$(readlink "$dir/..data")" != "$data1" ]
	pw2=$(version password)
	[ -n "$pw2" ]
	[ "$pw2" != "$pw1" ]
	# Only the changed object's version moves.
	[ "$(version username)" = "$user1" ]
	wait_for 30 synced password rot-v2
	synced username rot-user
}

@test "rotation: republish with the secret unchanged keeps the version and does not rewrite the files" {
	dir=$(target $NS app secrets)
	[ "$(cat "$dir/password")" = "rot-v2" ]
	versions1=$(spcps_versions $NS app)
	data1=$(readlink "$dir/..data")
	inode1=$(stat -L -c '%i %Y' "$dir/password")
	wait_poll_interval
	reads=$(audit_count secret/data/rotation/app read)
	run publish $NS app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	# The provider was asked (one more KV read): the republish was not skipped.
	[ "$(audit_count secret/data/rotation/app read)" -eq $((reads + 1)) ]
	[ "$(spcps_versions $NS app)" = "$versions1" ]
	[ "$(readlink "$dir/..data")" = "$data1" ]
	[ "$(stat -L -c '%i %Y' "$dir/password")" = "$inode1" ]
	[ "$(cat "$dir/password")" = "rot-v2" ]
	synced password rot-v2
}
