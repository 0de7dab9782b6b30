#!/usr/bin/env bats
# Cases 5, 6 and 7: PKI certificates, database credentials from a real
# PostgreSQL, and one class mixing KV, database and PKI.

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v write database/roles/dyn db_name=pg default_ttl=1h max_ttl=24h \
		creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';" >/dev/null
	v kv put secret/dyn/app api-key=k-123 >/dev/null
	app dyn app dyn '
path "pki/issue/example-com" { capabilities = ["update"] }
path "database/creds/dyn"   { capabilities = ["read"] }
path "secret/data/dyn/*"    { capabilities = ["read"] }'
	k apply -f - >/dev/null <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: pki, namespace: dyn}
spec:
  provider: vault
  parameters:
    roleName: dyn
    objects: |
      - objectName: tls.crt
        secretPath: pki/issue/example-com
        method: PUT
        secretKey: certificate
        secretArgs: {common_name: web.example.com, ttl: 1h}
      - objectName: tls.key
        secretPath: pki/issue/example-com
        method: PUT
        secretKey: private_key
        secretArgs: {common_name: web.example.com, ttl: 1h}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: db, namespace: dyn}
spec:
  provider: vault
  parameters:
    roleName: dyn
    objects: |
      - {objectName: username, secretPath: database/creds/dyn, secretKey: username}
      - {objectName: password, secretPath: database/creds/dyn, secretKey: password}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: mixed, namespace: dyn}
spec:
  provider: vault
  parameters:
    roleName: dyn
    objects: |
      - {objectName: api-key, secretPath: secret/data/dyn/app, secretKey: api-key}
      - {objectName: db/username, secretPath: database/creds/dyn, secretKey: username}
      - {objectName: db/password, secretPath: database/creds/dyn, secretKey: password}
      - objectName: tls/tls.crt
        secretPath: pki/issue/example-com
        method: PUT
        secretKey: certificate
        secretArgs: {common_name: mixed.example.com}
YAML
	pod dyn web app secrets=pki
	pod dyn db app secrets=db
	pod dyn mixed app secrets=mixed
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

@test "PKI issue via PUT + secretArgs: a valid certificate for the requested name, with its key" {
	before=$(audit_count pki/issue/example-com)
	run publish dyn web secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dir=$(target dyn web secrets)
	openssl verify -CAfile "$E2E_STATE_DIR/vault/ca.pem" "$dir/tls.crt"
	openssl x509 -in "$dir/tls.crt" -noout -subject | grep -q "CN *= *web.example.com"
	# Key and certificate come from the same issue call.
	[ "$(openssl x509 -in "$dir/tls.crt" -noout -pubkey)" = "$(openssl pkey -in "$dir/tls.key" -pubout)" ]
	[ "$(($(audit_count pki/issue/example-com) - before))" -eq 1 ]
}

@test "database credentials: one Vault read for both objects, and they log in to PostgreSQL" {
	before=$(audit_count database/creds/dyn)
	run publish dyn db secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dir=$(target dyn db secrets)
	[ "$(($(audit_count database/creds/dyn) - before))" -eq 1 ]
	user=$(cat "$dir/username")
	run psql_as "$user" "$(cat "$dir/password")" "SELECT current_user"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$output" = "$user" ]
}

@test "one SecretProviderClass mixing KV, database and PKI" {
	run publish dyn mixed secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dir=$(target dyn mixed secrets)
	[ "$(cat "$dir/api-key")" = "k-123" ]
	run psql_as "$(cat "$dir/db/username")" "$(cat "$dir/db/password")" "SELECT 1"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$output" = "1" ]
	openssl x509 -in "$dir/tls/tls.crt" -noout -subject | grep -q "CN *= *mixed.example.com"
	[ "$(spcps dyn mixed | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["status"]["objects"]))')" = 4 ]
}
