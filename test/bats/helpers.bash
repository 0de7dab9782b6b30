# Helpers shared by setup_suite and the cases. Every process is started in
# its own process group with its group id in $E2E_PIDS_DIR, so cluster.sh
# down stops it whatever happens to the suite.

# shellcheck shell=bash

log() { printf '# %s\n' "$*" >&3; }

# start_bg NAME LOG CMD...: starts CMD in a new session, records its pgid.
start_bg() {
	local name=$1 logf=$2
	shift 2
	setsid "$@" >>"$logf" 2>&1 </dev/null &
	echo $! >"$E2E_PIDS_DIR/$name.pid"
}

# stop_bg NAME: SIGTERM the process group, wait for it.
stop_bg() {
	local f="$E2E_PIDS_DIR/$1.pid" pgid i
	[[ -f $f ]] || return 0
	pgid=$(<"$f")
	kill -TERM -- "-$pgid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 -- "-$pgid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$pgid" 2>/dev/null || true
	rm -f "$f"
}

# wait_for TIMEOUT_S CMD...: polls CMD every 0.2s until it succeeds.
wait_for() {
	local timeout=$1 deadline
	shift
	deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			echo "timed out after ${timeout}s waiting for: $*" >&2
			return 1
		fi
		sleep 0.2
	done
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

k() { "$KUBECTL" "$@"; }

# v ARGS...: the vault CLI as root against the suite's Vault.
v() { VAULT_ADDR="$VAULT_ADDR" VAULT_TOKEN="$VAULT_ROOT_TOKEN" "$VAULT_BIN" "$@"; }

start_vault() {
	local port
	port=$(free_port)
	VAULT_ADDR="http://127.0.0.1:$port"
	VAULT_ROOT_TOKEN="root-$RANDOM$RANDOM"
	mkdir -p "$E2E_STATE_DIR/vault"
	start_bg vault "$E2E_STATE_DIR/logs/vault.log" env -u VAULT_TOKEN -u VAULT_ADDR HOME="$E2E_STATE_DIR/vault" \
		"$VAULT_BIN" server -dev -dev-root-token-id="$VAULT_ROOT_TOKEN" -dev-listen-address="127.0.0.1:$port" -dev-no-store-token
	{
		echo "export VAULT_ADDR=$VAULT_ADDR"
		echo "export VAULT_ROOT_TOKEN=$VAULT_ROOT_TOKEN"
		echo "export VAULT_AUDIT_LOG=$E2E_STATE_DIR/vault/audit.log"
	} >>"$E2E_STATE_DIR/env"
	export VAULT_ADDR VAULT_ROOT_TOKEN VAULT_AUDIT_LOG="$E2E_STATE_DIR/vault/audit.log"
	wait_for 30 curl -fsS "$VAULT_ADDR/v1/sys/health"
	v audit enable file file_path="$VAULT_AUDIT_LOG" >/dev/null
}

pg_bin() { dirname "$(readlink -f "$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl | tail -1)")"; }

start_postgres() {
	local port bin dir
	port=$(free_port)
	bin=$(pg_bin)
	# Its own directory: PostgreSQL runs as the postgres user, who cannot
	# enter the root-only state directory.
	dir=$(mktemp -d /tmp/vcp-e2e-pg.XXXXXX)
	PG_PASSWORD="pg-$RANDOM$RANDOM"
	echo "$PG_PASSWORD" >"$dir/pw"
	chown -R postgres: "$dir"
	chmod 700 "$dir"
	runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pw" --auth=scram-sha-256 --no-sync >"$dir/initdb.log" 2>&1
	runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off" start >/dev/null
	{
		echo "export PG_PORT=$port"
		echo "export PG_PASSWORD=$PG_PASSWORD"
		echo "export PG_DATA=$dir/data"
	} >>"$E2E_STATE_DIR/env"
	export PG_PORT=$port PG_PASSWORD PG_DATA="$dir/data"
}

stop_postgres() {
	[[ -n ${PG_DATA:-} ]] || return 0
	if [[ -f $PG_DATA/postmaster.pid ]]; then
		runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$(dirname "$PG_DATA")"
}

# psql_as USER PASSWORD SQL
psql_as() {
	PGPASSWORD=$2 PGCONNECT_TIMEOUT=10 psql -h 127.0.0.1 -p "$PG_PORT" -U "$1" -d postgres -tAc "$3"
}

configure_vault() {
	# kubernetes auth: Vault reviews pod tokens with the API server.
	k create namespace vault-system >/dev/null
	k -n vault-system create serviceaccount vault-reviewer >/dev/null
	k create clusterrolebinding vault-reviewer --clusterrole=system:auth-delegator --serviceaccount=vault-system:vault-reviewer >/dev/null
	local reviewer
	reviewer=$(k -n vault-system create token vault-reviewer --duration=24h)
	v auth enable kubernetes >/dev/null
	v write auth/kubernetes/config kubernetes_host="$KUBE_APISERVER_URL" kubernetes_ca_cert=@"$KUBE_CA_FILE" \
		token_reviewer_jwt="$reviewer" >/dev/null
	# jwt auth validating the API server's service account signatures.
	v auth enable jwt >/dev/null
	v write auth/jwt/config jwt_validation_pubkeys=@"$KUBE_SA_PUBLIC_KEY" bound_issuer="$KUBE_SA_ISSUER" >/dev/null
	# Engines: KV v2 at secret/ comes with dev mode.
	v secrets enable pki >/dev/null
	v secrets tune -max-lease-ttl=87600h pki >/dev/null
	v write -field=certificate pki/root/generate/internal common_name="e2e root" ttl=87600h >"$E2E_STATE_DIR/vault/ca.pem"
	v write pki/roles/example-com allowed_domains=example.com allow_subdomains=true max_ttl=72h >/dev/null
	v secrets enable database >/dev/null
	v write database/config/pg plugin_name=postgresql-database-plugin \
		connection_url="postgresql://{{username}}:{{password}}@127.0.0.1:$PG_PORT/postgres?sslmode=disable" \
		username=postgres password="$PG_PASSWORD" allowed_roles='*' >/dev/null
}

start_driver() {
	local port
	port=$(free_port)
	start_bg csi-driver "$E2E_STATE_DIR/logs/csi-driver.log" "$CSI_DRIVER_BIN" \
		--endpoint "$CSI_ENDPOINT" --nodeid "$KUBE_NODE_NAME" \
		--provider-volume "$CSI_PROVIDERS_DIR" --additional-provider-volume-paths "$CSI_PROVIDERS_DIR" \
		--metrics-addr "127.0.0.1:$port" --kubeconfig "$KUBECONFIG" \
		--enable-secret-rotation --rotation-poll-interval=2s -v 2
	wait_for 30 test -S "${CSI_ENDPOINT#unix://}"
}

start_provider() {
	local port
	# A restart keeps the health port: later test files still know it.
	if [[ -n ${PROVIDER_HEALTH:-} ]]; then
		port=${PROVIDER_HEALTH##*:}
	else
		port=$(free_port)
	fi
	PROVIDER_HEALTH="http://127.0.0.1:$port"
	export PROVIDER_HEALTH
	start_bg provider "$E2E_STATE_DIR/logs/provider.log" env -u VAULT_TOKEN -u VAULT_ADDR "$PROVIDER_BIN" \
		-endpoint "$PROVIDER_SOCKET" -vault-addr "$VAULT_ADDR" -kubeconfig "$KUBECONFIG" \
		-hmac-secret-namespace "$PROVIDER_NAMESPACE" -hmac-secret-name "$HMAC_SECRET" \
		-health-addr "127.0.0.1:$port" -v=5
	wait_for 30 curl -fsS "$PROVIDER_HEALTH/readyz"
}

restart_provider() {
	stop_bg provider
	start_provider
}

# app NS SA ROLE POLICY_HCL [extra vault role args...]: a namespace and
# service account, and a kubernetes auth role bound to them.
app() {
	local ns=$1 sa=$2 role=$3 policy=$4
	shift 4
	k get namespace "$ns" >/dev/null 2>&1 || k create namespace "$ns" >/dev/null
	k -n "$ns" get serviceaccount "$sa" >/dev/null 2>&1 || k -n "$ns" create serviceaccount "$sa" >/dev/null
	echo "$policy" | v policy write "$role" - >/dev/null
	v write "auth/kubernetes/role/$role" bound_service_account_names="$sa" \
		bound_service_account_namespaces="$ns" policies="$role" audience=vault ttl=1h "$@" >/dev/null
}

# pod NS NAME SA VOLUME=SPC...: a pod on the test node with one inline
# secrets-store volume per VOLUME=SPC pair.
pod() {
	local ns=$1 name=$2 sa=$3
	shift 3
	{
		cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $ns}
spec:
  nodeName: $KUBE_NODE_NAME
  serviceAccountName: $sa
  containers:
  - name: app
    image: registry.k8s.io/pause:3.10
    volumeMounts:
YAML
		local pair
		for pair in "$@"; do
			echo "    - {name: ${pair%%=*}, mountPath: /mnt/${pair%%=*}, readOnly: true}"
		done
		echo "  volumes:"
		for pair in "$@"; do
			echo "  - name: ${pair%%=*}"
			echo "    csi: {driver: secrets-store.csi.k8s.io, readOnly: true, volumeAttributes: {secretProviderClass: ${pair#*=}}}"
		done
	} | k apply -f - >/dev/null
}

# publish NS POD VOLUME: kubelet's NodePublishVolume; prints the target path.
publish() {
	"$KUBELET_BIN" publish -kubeconfig "$KUBECONFIG" -csi "$CSI_ENDPOINT" -root "$KUBELET_ROOT" \
		-namespace "$1" -pod "$2" -volume "$3"
}

unpublish() {
	"$KUBELET_BIN" unpublish -kubeconfig "$KUBECONFIG" -csi "$CSI_ENDPOINT" -root "$KUBELET_ROOT" \
		-namespace "$1" -pod "$2" -volume "$3"
}

# gone NS KIND NAME: the API server answers that the object does not exist
# (an unreachable API server is not an answer).
gone() {
	local out
	out=$(k -n "$1" get "$2" "$3" --ignore-not-found -o name) || return 1
	[ -z "$out" ]
}

# target NS POD VOLUME: where kubelet mounts the volume.
target() {
	local uid
	uid=$(k -n "$1" get pod "$2" -o jsonpath='{.metadata.uid}')
	echo "$KUBELET_ROOT/pods/$uid/volumes/kubernetes.io~csi/$3/mount"
}

# audit_count PATH_PREFIX [OPERATION]: requests Vault logged so far.
audit_count() {
	local op=${2:-}
	python3 - "$VAULT_AUDIT_LOG" "$1" "$op" <<'PY'
import json, sys
log, prefix, op = sys.argv[1], sys.argv[2], sys.argv[3]
n = 0
for line in open(log):
    e = json.loads(line)
    if e.get("type") != "request":
        continue
    r = e["request"]
    if r.get("path", "").startswith(prefix) and (not op or r.get("operation") == op):
        n += 1
print(n)
PY
}

# audit_live: the audit log records requests now, so an unchanged count
# means Vault saw nothing: a request of our own must show up in it.
audit_live() {
	local probe=cubbyhole/e2e-audit-probe-$RANDOM$RANDOM
	v read "$probe" >/dev/null 2>&1 || true # nothing is there: exit status 2
	[ "$(audit_count "$probe")" -eq 1 ]
}

# spcps NS POD: the SecretProviderClassPodStatus objects of a pod, as JSON.
spcps() {
	k -n "$1" get secretproviderclasspodstatuses -o json |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps([i for i in d["items"] if i["status"]["podName"]==sys.argv[1]]))' "$2"
}

# csidriver_tokens: the CSIDriver's token settings as a JSON object
# {"tokenRequests": ..., "serviceAccountTokenInSecrets": ...} (null when
# unset), to be restored later with csidriver_set_tokens.
csidriver_tokens() {
	k get csidriver "$CSI_DRIVER_NAME" -o json | python3 -c '
import json, sys
spec = json.load(sys.stdin)["spec"]
print(json.dumps({f: spec.get(f) for f in ("tokenRequests", "serviceAccountTokenInSecrets")}))'
}

# csidriver_set_tokens JSON: merge-patches the CSIDriver's spec with JSON,
# e.g. '{"tokenRequests":[{"audience":"vault"}]}', or
# '{"tokenRequests":null,"serviceAccountTokenInSecrets":null}' to remove the
# token requests (the API server refuses serviceAccountTokenInSecrets
# without them). The kubelet stand-in reads the object on every publish.
csidriver_set_tokens() {
	k patch csidriver "$CSI_DRIVER_NAME" --type=merge -p "{\"spec\":$1}" >/dev/null
}

# spcps_versions NS POD: "SPC/objectID=version" lines of the pod's
# SecretProviderClassPodStatus objects, sorted; fails if there are none.
spcps_versions() {
	spcps "$1" "$2" | python3 -c '
import json, sys
items = json.load(sys.stdin)
lines = sorted("%s/%s=%s" % (i["status"]["secretProviderClassName"], o["id"], o["version"])
               for i in items for o in i["status"].get("objects") or [])
if not lines:
    sys.exit("no SecretProviderClassPodStatus objects")
print("\n".join(lines))'
}

# recreate_pod NS NAME SA VOLUME=SPC...: unpublishes the pod's volumes (as
# kubelet does when a pod goes), deletes the pod at once (no kubelet confirms
# a graceful deletion here) and creates it again: same name, new UID.
recreate_pod() {
	local ns=$1 name=$2 sa=$3 pair
	shift 3
	for pair in "$@"; do
		unpublish "$ns" "$name" "${pair%%=*}" >/dev/null
	done
	k -n "$ns" delete pod "$name" --grace-period=0 --force --wait=true >/dev/null 2>&1
	pod "$ns" "$name" "$sa" "$@"
}
