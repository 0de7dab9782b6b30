#!/usr/bin/env bats
# Issue 11: one provider serves every pod of the node, and a pod's CSI
# volumeAttributes override its SecretProviderClass's parameters: they are
# tenant input. A victim pod mounts a database credential and a KV secret;
# a hostile pod on the same provider sends hostile attributes through the
# real driver, each refused with the documented error; then the victim's
# next poll finds its token, lease, database login and files untouched, and
# the provider is the same healthy process.

NS=tenancy-victim
HNS=tenancy-hostile
# The hostile address's password: it must show up in no error and no log.
HOSTILE_PW=hostile-Pw-7f3c91e2
# Distinct roleName identities the hostile pod tries.
ROLES=30

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v write database/roles/tenancy db_name=pg default_ttl=1h max_ttl=24h \
		creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';" >/dev/null
	v kv put secret/tenancy/victim api-key=victim-v1 >/dev/null
	v kv put secret/tenancy/hostile note=hostile-note >/dev/null
	app $NS app $NS '
path "database/creds/tenancy"      { capabilities = ["read"] }
path "secret/data/tenancy/victim"  { capabilities = ["read"] }'
	app $HNS app $HNS 'path "secret/data/tenancy/hostile" { capabilities = ["read"] }'
	k apply -f - >/dev/null <<YAML
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: victim, namespace: $NS}
spec:
  provider: vault
  parameters:
    roleName: $NS
    objects: |
      - {objectName: api-key, secretPath: secret/data/tenancy/victim, secretKey: api-key}
      - {objectName: db/username, secretPath: database/creds/tenancy, secretKey: username}
      - {objectName: db/password, secretPath: database/creds/tenancy, secretKey: password}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: hostile, namespace: $HNS}
spec:
  provider: vault
  parameters:
    roleName: $HNS
    objects: |
      - {objectName: note, secretPath: secret/data/tenancy/hostile, secretKey: note}
YAML
	pod $NS victim app secrets=victim
	hostile_pod | k apply -f - >/dev/null
}

teardown_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	unpublish $NS victim secrets >/dev/null 2>&1 || true
	unpublish $HNS hostile own >/dev/null 2>&1 || true
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

# hostile_pod: the hostile pod as JSON. Every volume uses the hostile class
# and overrides some of its parameters in volumeAttributes; "own" overrides
# nothing and shows the class itself works.
hostile_pod() {
	HNS=$HNS HOSTILE_PW=$HOSTILE_PW ROLES=$ROLES python3 - <<'PY'
import json, os

ns, node, roles = os.environ["HNS"], os.environ["KUBE_NODE_NAME"], int(os.environ["ROLES"])
# The YAML "billion laughs": nine levels of nine aliases, 9^9 strings once
# expanded, a few hundred bytes as text.
bomb = [
    "- objectName: note",
    "  secretPath: secret/data/tenancy/hostile",
    "  secretKey: note",
    "  secretArgs:",
    '    a: &a [' + ",".join(['"lol"'] * 9) + "]",
]
for prev, cur in zip("abcdefgh", "bcdefghi"):
    bomb.append("    %s: &%s [%s]" % (cur, cur, ",".join(["*" + prev] * 9)))
volumes = {
    "own": {},
    "alias-bomb": {"objects": "\n".join(bomb) + "\n"},
    "printf-width": {"objects": (
        "- {objectName: note, secretPath: secret/data/tenancy/hostile, secretKey: note}\n"
        "- {objectName: wide, template: '{{ printf \"%[1]*[2]d\" 999999 1 }}'}\n")},
    "dev-zero": {"vaultCACertPath": "/dev/zero"},
    "userinfo": {"vaultAddress": os.environ["VAULT_ADDR"].replace(
        "://", "://tenant:%s@" % os.environ["HOSTILE_PW"], 1)},
    "victim-role": {"roleName": "tenancy-victim"},
}
for i in range(roles):
    volumes["r%d" % i] = {"roleName": "r%d" % i}
pod = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "hostile", "namespace": ns},
    "spec": {
        "nodeName": node, "serviceAccountName": "app",
        "containers": [{
            "name": "app", "image": "registry.k8s.io/pause:3.10",
            "volumeMounts": [{"name": n, "mountPath": "/mnt/" + n, "readOnly": True} for n in volumes],
        }],
        "volumes": [{"name": n, "csi": {
            "driver": "secrets-store.csi.k8s.io", "readOnly": True,
            "volumeAttributes": dict({"secretProviderClass": "hostile"}, **attrs),
        }} for n, attrs in volumes.items()],
    },
}
print(json.dumps(pod))
PY
}

# save NAME VALUE, saved NAME: a value kept between this file's cases.
save() { printf '%s' "$2" >"$BATS_FILE_TMPDIR/$1"; }
saved() { cat "$BATS_FILE_TMPDIR/$1"; }

# vault_tokens NS: accessors of the live Vault tokens logged in for service
# accounts of namespace NS (kubernetes auth metadata), sorted.
vault_tokens() {
	python3 - "$1" <<'PY'
import json, os, sys, urllib.error, urllib.request

addr, root, ns = os.environ["VAULT_ADDR"], os.environ["VAULT_ROOT_TOKEN"], sys.argv[1]
def call(path, body=None):
    req = urllib.request.Request(addr + "/v1/" + path, headers={"X-Vault-Token": root},
                                 data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)
found = []
for a in call("auth/token/accessors?list=true")["data"]["keys"]:
    try:
        d = call("auth/token/lookup-accessor", {"accessor": a})["data"]
    except urllib.error.HTTPError:
        continue  # expired or revoked since the list
    if (d.get("meta") or {}).get("service_account_namespace") == ns:
        found.append(a)
print("\n".join(sorted(found)))
PY
}

# leases: the lease IDs Vault holds under database/creds/tenancy, sorted.
leases() {
	v list -format=json sys/leases/lookup/database/creds/tenancy/ | python3 -c 'import json,sys; print("\n".join(sorted(json.load(sys.stdin))))'
}

# provider_started: the provider's PID and its start time (clock ticks after
# boot): the same pair is the same process.
provider_started() {
	local pid
	pid=$(<"$E2E_PIDS_DIR/provider.pid")
	echo "$pid $(awk '{print $22}' "/proc/$pid/stat")"
}

# grpc_count CODE: Mount calls the provider answered with CODE.
grpc_count() {
	curl -fsS "$PROVIDER_HEALTH/metrics" |
		awk -v c="$1" '$1 ~ /^vault_csi_provider_grpc_requests_total\{/ && $1 ~ /method="[^"]*Mount"/ && $1 ~ ("code=\"" c "\"") {n += $2} END {print n + 0}'
}

# completed DIR: publishes of DIR the driver logged as complete (a failed
# republish is reported to kubelet as success).
completed() {
	grep -F "node publish volume complete" "$E2E_STATE_DIR/logs/csi-driver.log" | grep -cF "\"$1\"" || true
}

# hostile_publish VOLUME: publishes one of the hostile pod's volumes; it
# must fail. Sets output (kubelet's error) and took (seconds).
hostile_publish() {
	local t0
	t0=$(date +%s%N)
	run publish $HNS hostile "$1"
	took=$((($(date +%s%N) - t0) / 1000000000))
	echo "$output"
	echo "took ${took}s"
	[ "$status" -ne 0 ]
}

@test "tenancy: the victim mounts a database credential and a KV secret" {
	run publish $NS victim secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	dir=$(target $NS victim secrets)
	[ "$(cat "$dir/api-key")" = "victim-v1" ]
	user=$(cat "$dir/db/username")
	pass=$(cat "$dir/db/password")
	[ -n "$user" ]
	[ -n "$pass" ]
	run psql_as "$user" "$pass" "SELECT current_user"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$output" = "$user" ]

	# One login, one token and one lease for the victim.
	tokens=$(vault_tokens $NS)
	echo "victim tokens: $tokens"
	[ -n "$tokens" ]
	[ "$(wc -l <<<"$tokens")" -eq 1 ]
	lease=$(leases)
	echo "leases: $lease"
	[ -n "$lease" ]
	[ "$(wc -l <<<"$lease")" -eq 1 ]

	save user "$user"
	save pass "$pass"
	save accessor "$tokens"
	save lease "$lease"
	save provider "$(provider_started)"
	save revoke-self "$(audit_count auth/token/revoke-self)"
	save revoke "$(audit_count sys/leases/revoke)"
	save internal "$(grpc_count Internal)"
	save denied "$(grpc_count PermissionDenied)"
	save panics "$(grep -c "Recovered from a panic" "$E2E_STATE_DIR/logs/provider.log" || true)"
}

@test "tenancy: the hostile pod's class, unchanged, mounts (the refusals below are the overrides')" {
	run publish $HNS hostile own
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(cat "$(target $HNS hostile own)/note")" = "hostile-note" ]
}

@test "tenancy: a YAML alias bomb in objects is refused (InvalidArgument), before Vault" {
	reads=$(audit_count secret/data/tenancy/hostile)
	hostile_publish alias-bomb
	[[ $output == *"code = InvalidArgument"* ]]
	[[ $output == *"YAML anchor &a"* ]]
	[[ $output == *"anchors (&name) and aliases (*name) are not accepted in objects"* ]]
	[ "$took" -lt 10 ]
	audit_live
	[ "$(audit_count secret/data/tenancy/hostile)" -eq "$reads" ]
}

@test "tenancy: a template's printf width of 999999 is refused (ResourceExhausted, MaxFormatWidth)" {
	hostile_publish printf-width
	[[ $output == *"code = ResourceExhausted"* ]]
	[[ $output == *"a width or precision is over 1024 (MaxFormatWidth)"* ]]
	[ "$took" -lt 10 ]
}

@test "tenancy: vaultCACertPath /dev/zero is refused at once (InvalidArgument, not a regular file)" {
	hostile_publish dev-zero
	[[ $output == *"code = InvalidArgument"* ]]
	[[ $output == *"CA file /dev/zero is"* ]]
	[[ $output == *"not a regular file"* ]]
	[ "$took" -lt 10 ]
}

@test "tenancy: vaultAddress with user:password@ is refused (InvalidArgument); the password is echoed nowhere" {
	logins=$(audit_count auth/kubernetes/login)
	hostile_publish userinfo
	[[ $output == *"code = InvalidArgument"* ]]
	[[ $output == *"carries user information (user:password@, not shown here)"* ]]
	[[ $output != *"$HOSTILE_PW"* ]]
	[[ $output != *"tenant:"* ]]
	# Refused before anything reached Vault.
	audit_live
	[ "$(audit_count auth/kubernetes/login)" -eq "$logins" ]
	# Written nowhere: the provider's and the driver's logs, Vault's audit log.
	run grep -cF "$HOSTILE_PW" "$E2E_STATE_DIR/logs/provider.log"
	[ "$output" = 0 ]
	run grep -cF "$HOSTILE_PW" "$E2E_STATE_DIR/logs/csi-driver.log"
	[ "$output" = 0 ]
	run grep -cF "$HOSTILE_PW" "$VAULT_AUDIT_LOG"
	[ "$output" = 0 ]
}

@test "tenancy: the hostile pod naming the victim's role is refused by Vault (PermissionDenied)" {
	hostile_publish victim-role
	[[ $output == *"code = PermissionDenied"* ]]
	[[ $output == *"Vault refused login as role \"tenancy-victim\""* ]]
	# No token for the hostile service account under the victim's role.
	tokens=$(vault_tokens $HNS)
	echo "hostile tokens: $tokens"
	[ "$(wc -l <<<"$tokens")" -eq 1 ] # the one its own class's mount got
}

@test "tenancy: $ROLES distinct roleName identities at once all fail to log in; none succeeds" {
	logins=$(audit_count auth/kubernetes/login)
	pids=()
	for ((i = 0; i < ROLES; i++)); do
		publish $HNS hostile "r$i" >"$BATS_TEST_TMPDIR/r$i.out" 2>&1 &
		pids+=($!)
	done
	failed=0
	for ((i = 0; i < ROLES; i++)); do
		if wait "${pids[$i]}"; then
			echo "r$i mounted: $(cat "$BATS_TEST_TMPDIR/r$i.out")"
		else
			failed=$((failed + 1))
		fi
	done
	echo "r0: $(cat "$BATS_TEST_TMPDIR/r0.out")"
	[ "$failed" -eq "$ROLES" ]
	for ((i = 0; i < ROLES; i++)); do
		grep -qF "code = PermissionDenied" "$BATS_TEST_TMPDIR/r$i.out"
		grep -qF "role \"r$i\"" "$BATS_TEST_TMPDIR/r$i.out"
	done
	# Each identity asked Vault once: no retry storm.
	audit_live
	[ "$(audit_count auth/kubernetes/login)" -eq $((logins + ROLES)) ]
}

@test "tenancy: the victim's next poll: same token, lease and database user, its login works, same healthy provider" {
	dir=$(target $NS victim secrets)
	user=$(saved user)
	# The poll must visibly do something: the KV secret changes.
	v kv put secret/tenancy/victim api-key=victim-v2 >/dev/null
	sleep 2.5 # past the driver's --rotation-poll-interval since the last write
	logins=$(audit_count auth/kubernetes/login)
	creds=$(audit_count database/creds/tenancy)
	done1=$(completed "$dir")
	run publish $NS victim secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(completed "$dir")" -eq $((done1 + 1)) ]
	[ "$(cat "$dir/api-key")" = "victim-v2" ]
	# Files: the same credential as before.
	[ "$(cat "$dir/db/username")" = "$user" ]
	[ "$(cat "$dir/db/password")" = "$(saved pass)" ]
	# Served from the victim's cache: no login, no new credential.
	audit_live
	[ "$(audit_count auth/kubernetes/login)" -eq "$logins" ]
	[ "$(audit_count database/creds/tenancy)" -eq "$creds" ]
	# Nothing was revoked since the victim mounted, by anyone.
	[ "$(audit_count auth/token/revoke-self)" -eq "$(saved revoke-self)" ]
	[ "$(audit_count sys/leases/revoke)" -eq "$(saved revoke)" ]

	# The victim's token: the same single one, still valid.
	tokens=$(vault_tokens $NS)
	echo "victim tokens: $tokens (before: $(saved accessor))"
	[ "$tokens" = "$(saved accessor)" ]
	ttl=$(v token lookup -format=json -accessor "$tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["ttl"])')
	echo "token ttl: $ttl"
	[ "$ttl" -gt 0 ]
	# Its lease: the same single one, not revoked.
	lease=$(leases)
	[ "$lease" = "$(saved lease)" ]
	ttl=$(v write -format=json sys/leases/lookup lease_id="database/creds/tenancy/$lease" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["ttl"])')
	echo "lease ttl: $ttl"
	[ "$ttl" -gt 0 ]
	# PostgreSQL still takes the victim's credential.
	run psql_as "$user" "$(saved pass)" "SELECT current_user"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$output" = "$user" ]

	# The same provider process, ready, with no panic and no Internal error;
	# its metrics counted the hostile pod's refused logins.
	[ "$(provider_started)" = "$(saved provider)" ]
	curl -fsS "$PROVIDER_HEALTH/readyz"
	[ "$(grpc_count Internal)" -eq "$(saved internal)" ]
	[ "$(grpc_count PermissionDenied)" -eq $(($(saved denied) + ROLES + 1)) ]
	[ "$(grep -c "Recovered from a panic" "$E2E_STATE_DIR/logs/provider.log" || true)" -eq "$(saved panics)" ]
}
