#!/usr/bin/env bats
# Case 14: the provider restarted between two publishes of a volume. The new
# process (empty token cache) logs in again and serves the republish; the
# object versions (same HMAC key, read back from its Secret) and the files
# stay exactly as they were.

NS=provider-restart

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v kv put secret/provider-restart/app username=restart-user password=restart-pw >/dev/null
	app provider-restart app provider-restart 'path "secret/data/provider-restart/*" { capabilities = ["read"] }'
	k apply -f - >/dev/null <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: restart, namespace: provider-restart}
spec:
  provider: vault
  parameters:
    roleName: provider-restart
    objects: |
      - {objectName: username, secretPath: secret/data/provider-restart/app, secretKey: username}
      - {objectName: password, secretPath: secret/data/provider-restart/app, secretKey: password}
YAML
	pod provider-restart app app secrets=restart
}

teardown_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	unpublish provider-restart app secrets >/dev/null 2>&1 || true
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

# completed DIR: how many publishes of DIR the driver logged as complete (a
# failed republish is reported to kubelet as success, so count them here).
completed() {
	grep -F "node publish volume complete" "$E2E_STATE_DIR/logs/csi-driver.log" | grep -cF "\"$1\"" || true
}

@test "provider restart between publishes: republish works, versions and bytes unchanged" {
	run publish $NS app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dir=$(target $NS app secrets)
	[ "$(cat "$dir/username")" = "restart-user" ]
	[ "$(cat "$dir/password")" = "restart-pw" ]
	versions1=$(spcps_versions $NS app)
	[ "$(wc -l <<<"$versions1")" -eq 2 ]
	bytes1=$(cd "$dir" && sha256sum username password)
	data1=$(readlink "$dir/..data")
	pid1=$(cat "$E2E_PIDS_DIR/provider.pid")
	done1=$(completed "$dir")
	[ "$done1" -ge 1 ]

	restart_provider
	[ "$(cat "$E2E_PIDS_DIR/provider.pid")" != "$pid1" ]
	sleep 2.5 # past the driver's --rotation-poll-interval since the first write
	logins=$(audit_count auth/kubernetes/login update)
	reads=$(audit_count secret/data/provider-restart/app read)
	run publish $NS app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(completed "$dir")" -eq $((done1 + 1)) ]
	# The new process had no cached token: one login, one read.
	[ "$(audit_count auth/kubernetes/login update)" -eq $((logins + 1)) ]
	[ "$(audit_count secret/data/provider-restart/app read)" -eq $((reads + 1)) ]
	[ "$(spcps_versions $NS app)" = "$versions1" ]
	[ "$(cd "$dir" && sha256sum username password)" = "$bytes1" ]
	[ "$(readlink "$dir/..data")" = "$data1" ]
}
