#!/usr/bin/env bats
# Issue 7: several Vault addresses; an unreachable first one fails over to
# the next within the mount.

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v kv put secret/failover/app password=fo-pw >/dev/null
	app failover app failover 'path "secret/data/failover/*" { capabilities = ["read"] }'
	dead="http://127.0.0.1:$(free_port)"
	k apply -f - >/dev/null <<YAML
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: failover, namespace: failover}
spec:
  provider: vault
  parameters:
    vaultAddress: $dead,$VAULT_ADDR
    roleName: failover
    objects: |
      - {objectName: password, secretPath: secret/data/failover/app, secretKey: password}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: all-down, namespace: failover}
spec:
  provider: vault
  parameters:
    vaultAddress: $dead,http://127.0.0.1:$(free_port)
    roleName: failover
    objects: |
      - {objectName: password, secretPath: secret/data/failover/app, secretKey: password}
YAML
	pod failover app app secrets=failover
	pod failover down app secrets=all-down
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

@test "failover: an unreachable first Vault address moves on to the next" {
	before=$(curl -fsS "$PROVIDER_HEALTH/metrics" | awk '/^vault_csi_provider_vault_address_served_total\{position="1"\}/ {print $2}')
	run publish failover app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(cat "$(target failover app secrets)/password")" = "fo-pw" ]
	after=$(curl -fsS "$PROVIDER_HEALTH/metrics" | awk '/^vault_csi_provider_vault_address_served_total\{position="1"\}/ {print $2}')
	[ "$(( ${after:-0} - ${before:-0} ))" -eq 1 ]
}

@test "failover: every address down is Unavailable naming them" {
	run publish failover down secrets
	[ "$status" -ne 0 ]
	echo "$output"
	[[ $output == *"Unavailable"* ]]
	[[ $output == *"all 2 Vault addresses failed"* ]]
}
