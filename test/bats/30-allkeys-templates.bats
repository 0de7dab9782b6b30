#!/usr/bin/env bats
# Case 30: all-keys objects (secretKey "*") and template objects through the
# real driver. Every key of a KV v2 secret becomes its own file (and can be
# synced to a Kubernetes Secret by its nested name); a template renders a
# database config from a dynamic credential and KV settings that are never
# written themselves; the SecretProviderClassPodStatus lists one version per
# written object; a changed key set is rewritten on republish; mistakes are
# InvalidArgument naming the object (and the template line or the key).

NS=allkeys

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v write database/roles/allkeys db_name=pg default_ttl=1h max_ttl=24h \
		creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';" >/dev/null
	v kv put secret/allkeys/app username=ak-user 'password=p@ss w0rd' port=5432 >/dev/null
	v kv put secret/allkeys/settings host=127.0.0.1 db/name=postgres >/dev/null
	v kv put secret/allkeys/clash user=u pass=hidden-e2e-value >/dev/null
	app $NS app allkeys '
path "secret/data/allkeys/*" { capabilities = ["read"] }
path "database/creds/allkeys" { capabilities = ["read"] }'
	k apply -f - >/dev/null <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: allkeys, namespace: allkeys}
spec:
  provider: vault
  secretObjects:
  - secretName: allkeys-synced
    type: Opaque
    data:
    - {objectName: creds/username, key: username}
    - {objectName: config/db.env, key: db.env}
  parameters:
    roleName: allkeys
    objects: |
      - objectName: creds
        secretPath: secret/data/allkeys/app
        secretKey: "*"
        filePermission: 0400
      - objectName: db
        secretPath: database/creds/allkeys
        secretKey: "*"
        writeFile: false
      - objectName: settings
        secretPath: secret/data/allkeys/settings
        secretKey: "*"
        writeFile: false
      - objectName: config/db.env
        template: |
          PGHOST={{ .Values.settings.host }}
          PGDATABASE={{ index .Values.settings "db/name" }}
          PGUSER={{ .Values.db.username }}
          PGPASSWORD={{ .Values.db.password }}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: bad-template, namespace: allkeys}
spec:
  provider: vault
  parameters:
    roleName: allkeys
    objects: |
      - objectName: creds
        secretPath: secret/data/allkeys/app
        secretKey: "*"
      - objectName: app.conf
        template: |
          user={{ .Values.creds.username }}
          pass={{ .Values.credz.password }}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: missing-key, namespace: allkeys}
spec:
  provider: vault
  parameters:
    roleName: allkeys
    objects: |
      - objectName: creds
        secretPath: secret/data/allkeys/app
        secretKey: "*"
        writeFile: false
      - objectName: app.conf
        template: |
          user={{ .Values.creds.username }}
          key={{ .Values.creds.api_key }}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: clash, namespace: allkeys}
spec:
  provider: vault
  parameters:
    roleName: allkeys
    objects: |
      - objectName: creds
        secretPath: secret/data/allkeys/clash
        secretKey: "*"
      - objectName: creds/user
        secretPath: secret/data/allkeys/app
        secretKey: username
YAML
	pod $NS app app secrets=allkeys
	pod $NS bad app secrets=bad-template
	pod $NS missing app secrets=missing-key
	pod $NS clash app secrets=clash
}

teardown_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	unpublish $NS app secrets >/dev/null 2>&1 || true
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

# files DIR: the regular files below DIR, relative, sorted (the atomic
# writer's ..data link and timestamped directory are skipped).
files() {
	(cd "$1" && find -L . -path './..*' -prune -o -type f -print | sed 's|^\./||' | sort | tr '\n' ' ')
}

# env_value FILE KEY: KEY's value in a KEY=VALUE file.
env_value() { sed -n "s/^$2=//p" "$1"; }

@test "all keys and templates: one file per key, the rendered config, unwritten inputs stay out" {
	run publish $NS app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dir=$(target $NS app secrets)
	[ "$(files "$dir")" = "config/db.env creds/password creds/port creds/username " ]
	[ "$(cat "$dir/creds/username")" = "ak-user" ]
	[ "$(cat "$dir/creds/password")" = "p@ss w0rd" ]
	[ "$(cat "$dir/creds/port")" = "5432" ]
	[ "$(stat -L -c %a "$dir/creds/password")" = "400" ]
	[ "$(stat -L -c %a "$dir/config/db.env")" = "644" ]
	env=$dir/config/db.env
	[ "$(env_value "$env" PGHOST)" = "127.0.0.1" ]
	[ "$(env_value "$env" PGDATABASE)" = "postgres" ]
	# The rendered credential is a real one.
	user=$(env_value "$env" PGUSER)
	[ "$(psql_as "$user" "$(env_value "$env" PGPASSWORD)" 'SELECT current_user')" = "$user" ]
	# One version per written object: none for db and settings.
	run spcps_versions $NS app
	echo "$output"
	[ "$(echo "$output" | sed 's/=.*//' | tr '\n' ' ')" = "allkeys/config/db.env allkeys/creds " ]
}

@test "all keys: a key's nested file name syncs to a Kubernetes Secret" {
	wait_for 30 k -n $NS get secret allkeys-synced
	[ "$(k -n $NS get secret allkeys-synced -o jsonpath='{.data.username}' | base64 -d)" = "ak-user" ]
	k -n $NS get secret allkeys-synced -o jsonpath='{.data.db\.env}' | base64 -d | grep -q '^PGHOST=127.0.0.1$'
}

@test "all keys: added, changed and removed keys are rewritten on republish; only that object's version moves" {
	dir=$(target $NS app secrets)
	before=$(spcps_versions $NS app)
	creds1=$(echo "$before" | sed -n 's|^allkeys/creds=||p')
	conf1=$(echo "$before" | sed -n 's|^allkeys/config/db.env=||p')
	v kv put secret/allkeys/app username=ak-user 'password=n3w pw' token=t-1 >/dev/null
	sleep 2.5 # the driver skips republishes within its 2s rotation interval
	run publish $NS app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(files "$dir")" = "config/db.env creds/password creds/token creds/username " ]
	[ "$(cat "$dir/creds/password")" = "n3w pw" ]
	[ "$(cat "$dir/creds/token")" = "t-1" ]
	[ ! -e "$dir/creds/port" ]
	after=$(spcps_versions $NS app)
	[ "$(echo "$after" | sed -n 's|^allkeys/creds=||p')" != "$creds1" ]
	# The template's inputs (a cached credential, unchanged settings) did not
	# change, so neither did its version.
	[ "$(echo "$after" | sed -n 's|^allkeys/config/db.env=||p')" = "$conf1" ]
}

@test "templates: a template naming a missing object is InvalidArgument before Vault is called" {
	logins=$(audit_count auth/kubernetes/login)
	run publish $NS bad secrets
	[ "$status" -ne 0 ]
	echo "$output"
	[[ $output == *"InvalidArgument"* ]]
	[[ $output == *'object "app.conf": template: app.conf:2:'*'uses object "credz"'* ]]
	[ "$(audit_count auth/kubernetes/login)" -eq "$logins" ]
	audit_live
	[ ! -e "$(target $NS bad secrets)/app.conf" ]
}

@test "templates: a key missing at render time names the object and the template line" {
	run publish $NS missing secrets
	[ "$status" -ne 0 ]
	echo "$output"
	[[ $output == *"InvalidArgument"* ]]
	[[ $output == *"template: app.conf:2:"* ]]
	[[ $output == *'no entry for key "api_key"'* ]]
	[[ $output != *"ak-user"* && $output != *"n3w pw"* ]]
	[ ! -e "$(target $NS missing secrets)/app.conf" ]
}

@test "all keys: a key clashing with another object's file is InvalidArgument naming both" {
	run publish $NS clash secrets
	[ "$status" -ne 0 ]
	echo "$output"
	[[ $output == *"InvalidArgument"* ]]
	[[ $output == *"creds/user"*"key"*"user"* ]]
	[[ $output != *"hidden-e2e-value"* ]]
	[ ! -e "$(target $NS clash secrets)/creds" ]
}
