#!/usr/bin/env bash
# Runs every check the project has: formatting, vet, unit tests and the
# integration tests against a real Vault and PostgreSQL, all with -race.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"

"$ROOT_DIR/scripts/deps.sh"
VCP_VAULT_BIN="$("$ROOT_DIR/scripts/build-vault.sh")"
export VCP_VAULT_BIN VCP_REQUIRE_INTEGRATION=1
unset VAULT_TOKEN VAULT_ADDR

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
[[ -z "$unformatted" ]] || die "gofmt needed on: $unformatted"
log "go vet"
go vet ./...
log "staticcheck"
"$("$ROOT_DIR/scripts/build-staticcheck.sh")" ./...
log "go test -race (unit + integration against Vault $("$VCP_VAULT_BIN" version | head -1))"
go test -race -count=1 ./...

# A bounded smoke run of every fuzz target (the seeds already ran above);
# README "Fuzzing" has the long runs.
fuzz_time=${VCP_FUZZ_TIME:-10s}
# A large cached corpus (left by a long local run) must be re-measured before
# fuzzing starts, and that alone can outlast a 10 s smoke run ("context
# deadline exceeded"): the smoke run starts from the committed seeds only.
go clean -fuzzcache
log "fuzz smoke: every target for $fuzz_time"
for target in ./config:FuzzParse ./config:FuzzParseObjects ./config:FuzzValidateFileName ./config:FuzzRequestKey \
	./provider:FuzzRender ./internal/tmpl:FuzzTemplate ./internal/tmpl:FuzzPrintf ./server:FuzzPodUID ./vault:FuzzParseSecret; do
	if ! go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$fuzz_time" -fuzzminimizetime 5s "${target%%:*}" >"$CACHE_DIR/fuzz.log" 2>&1; then
		tail -40 "$CACHE_DIR/fuzz.log" >&2
		die "fuzz target $target failed (the crasher is kept under its testdata/fuzz)"
	fi
done

log "container image (no engine needed)"
"$ROOT_DIR/scripts/build-image.sh"

# The end-to-end suite on the real kube-apiserver, CSI driver and Vault.
if [[ -n ${VCP_SKIP_E2E:-} ]]; then
	log "VCP_SKIP_E2E is set: NOT running the end-to-end suite (make e2e runs it)"
else
	"$ROOT_DIR/scripts/e2e.sh"
fi
