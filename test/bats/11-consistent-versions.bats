#!/usr/bin/env bats
# Case 11: object versions depend only on the objects' configuration, their
# contents and the shared HMAC key. A pod re-created under the same name
# (new UID) gets the same versions and bytes; a new key (the key Secret
# deleted, the provider restarted) gives new versions.

NS=versions

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v kv put secret/versions/app username=versions-user password='v3rs!ons' >/dev/null
	app versions app versions 'path "secret/data/versions/*" { capabilities = ["read"] }'
	k apply -f - >/dev/null <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: versions, namespace: versions}
spec:
  provider: vault
  parameters:
    roleName: versions
    objects: |
      - {objectName: username, secretPath: secret/data/versions/app, secretKey: username}
      - {objectName: creds/password, secretPath: secret/data/versions/app, secretKey: password, filePermission: 0600}
YAML
	pod versions app app secrets=versions
}

teardown_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	unpublish versions app secrets >/dev/null 2>&1 || true
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

# files_digest DIR: the names, modes and bytes of the mounted objects.
files_digest() {
	(cd "$1" && stat -L -c '%n %a %s' username creds/password && sha256sum username creds/password)
}

# publish_checked POD: publishes and checks the SPCPS belongs to this pod UID.
publish_checked() {
	local out uid
	out=$(publish $NS app secrets) || { echo "$out"; return 1; }
	uid=$(k -n $NS get pod app -o jsonpath='{.metadata.uid}')
	[ "$(k -n $NS get secretproviderclasspodstatus app-$NS-versions -o jsonpath='{.metadata.ownerReferences[0].uid}')" = "$uid" ]
	[[ $(k -n $NS get secretproviderclasspodstatus app-$NS-versions -o jsonpath='{.status.targetPath}') == */pods/$uid/* ]]
}

@test "versions: equal across pod re-creation (same name, new UID), and the bytes too" {
	publish_checked
	uid1=$(k -n $NS get pod app -o jsonpath='{.metadata.uid}')
	v1=$(spcps_versions $NS app)
	d1=$(files_digest "$(target $NS app secrets)")
	echo "$v1"
	[ "$(wc -l <<<"$v1")" -eq 2 ]
	[ "$(cat "$(target $NS app secrets)/username")" = "versions-user" ]

	recreate_pod $NS app app secrets=versions
	uid2=$(k -n $NS get pod app -o jsonpath='{.metadata.uid}')
	[ "$uid2" != "$uid1" ]
	[ ! -e "$KUBELET_ROOT/pods/$uid1/volumes/kubernetes.io~csi/secrets/mount/username" ]
	publish_checked
	v2=$(spcps_versions $NS app)
	d2=$(files_digest "$(target $NS app secrets)")
	echo "$v2"
	[ "$v2" = "$v1" ]
	[ "$d2" = "$d1" ]
}

@test "versions: a new HMAC key (Secret deleted, provider restarted) changes them" {
	publish_checked
	v1=$(spcps_versions $NS app)
	d1=$(files_digest "$(target $NS app secrets)")
	[ "$(wc -l <<<"$v1")" -eq 2 ]
	key1=$(k -n "$PROVIDER_NAMESPACE" get secret "$HMAC_SECRET" -o jsonpath='{.data.key}')
	[ -n "$key1" ]
	k -n "$PROVIDER_NAMESPACE" delete secret "$HMAC_SECRET" >/dev/null
	restart_provider

	recreate_pod $NS app app secrets=versions
	publish_checked
	v3=$(spcps_versions $NS app)
	echo "$v3"
	[ "$(wc -l <<<"$v3")" -eq 2 ]
	# Every object's version changed, the files did not.
	[ -z "$(comm -12 <(sort <<<"$v1") <(sort <<<"$v3"))" ]
	[ "$(files_digest "$(target $NS app secrets)")" = "$d1" ]
	key2=$(k -n "$PROVIDER_NAMESPACE" get secret "$HMAC_SECRET" -o jsonpath='{.data.key}')
	[ -n "$key2" ]
	[ "$key2" != "$key1" ]
	[ "$(base64 -d <<<"$key2" | wc -c)" -eq 32 ]
	[ "$(k -n "$PROVIDER_NAMESPACE" get secret "$HMAC_SECRET" -o jsonpath='{.immutable}')" = "true" ]
}
