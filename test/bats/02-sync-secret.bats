#!/usr/bin/env bats
# Case 2: secretObjects sync the mounted objects to a Kubernetes Secret.

setup_file() {
	source "$BATS_TEST_DIRNAME/helpers.bash"
	v kv put secret/sync/app password=synced-pw cert=$'line1\nline2' >/dev/null
	app sync app sync 'path "secret/data/sync/*" { capabilities = ["read"] }'
	k apply -f - >/dev/null <<'YAML'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: sync, namespace: sync}
spec:
  provider: vault
  secretObjects:
  - secretName: app-synced
    type: Opaque
    labels: {team: payments}
    annotations: {owner: e2e}
    data:
    - {objectName: password, key: db-password}
    - {objectName: tls/cert, key: cert}
  parameters:
    roleName: sync
    objects: |
      - {objectName: password, secretPath: secret/data/sync/app, secretKey: password}
      - {objectName: tls/cert, secretPath: secret/data/sync/app, secretKey: cert}
YAML
	pod sync app app secrets=sync
}

setup() { source "$BATS_TEST_DIRNAME/helpers.bash"; }

@test "secretObjects: Secret with labels, annotations, decoded values and owners" {
	run publish sync app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	wait_for 30 k -n sync get secret app-synced
	[ "$(k -n sync get secret app-synced -o jsonpath='{.data.db-password}' | base64 -d)" = "synced-pw" ]
	[ "$(k -n sync get secret app-synced -o jsonpath='{.data.cert}' | base64 -d)" = $'line1\nline2' ]
	[ "$(k -n sync get secret app-synced -o jsonpath='{.metadata.labels.team}')" = "payments" ]
	[ "$(k -n sync get secret app-synced -o jsonpath='{.metadata.annotations.owner}')" = "e2e" ]
	# The Secret is owned by the pod's SecretProviderClassPodStatus, which is
	# owned by the pod: Kubernetes' garbage collector deletes both with it.
	# The driver adds the owner references right after creating the Secret.
	wait_for 30 bash -c "$KUBECTL -n sync get secret app-synced -o jsonpath='{.metadata.ownerReferences[0].kind}' | grep -q ."
	owner_kind=$(k -n sync get secret app-synced -o jsonpath='{.metadata.ownerReferences[0].kind}')
	owner_name=$(k -n sync get secret app-synced -o jsonpath='{.metadata.ownerReferences[0].name}')
	[ "$owner_kind" = "SecretProviderClassPodStatus" ]
	pod_uid=$(k -n sync get pod app -o jsonpath='{.metadata.uid}')
	[ "$(k -n sync get secretproviderclasspodstatus "$owner_name" -o jsonpath='{.metadata.ownerReferences[0].uid}')" = "$pod_uid" ]
}

@test "the synced Secret is deleted with its pod (garbage collection along the owner references)" {
	run unpublish sync app secrets
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	# No kubelet runs to finish a graceful deletion: delete the pod at once.
	k -n sync delete pod app --grace-period=0 --force >/dev/null 2>&1
	wait_for 60 gone sync secret app-synced
	run k -n sync get secretproviderclasspodstatuses -o name
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ -z "$output" ]
}
