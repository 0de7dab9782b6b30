#!/usr/bin/env bash
# Installs the Debian packages the tests need (PostgreSQL for database
# credentials, bats for the end-to-end suite) when they are missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v bats >/dev/null || need+=(bats)
command -v runuser >/dev/null || need+=(util-linux)
if ((${#need[@]} == 0)); then
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	die "missing packages: ${need[*]} (install them with apt-get, or run as root)"
fi
log "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
