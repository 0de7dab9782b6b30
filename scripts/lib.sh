# Shared helpers for the project's scripts. Source it; do not run it.
# Everything built here is cached under $CACHE_DIR (default: <repo>/.cache),
# keyed by version, so only the first run on a machine pays for a cold build.

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${VCP_CACHE_DIR:-$ROOT_DIR/.cache}"
BIN_CACHE="$CACHE_DIR/bin"
mkdir -p "$BIN_CACHE"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# free_port prints a TCP port on 127.0.0.1 that is free right now.
free_port() {
	python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# build_cached NAME VERSION MODULE_DIR PKG [ldflags...]: builds PKG inside
# MODULE_DIR into $BIN_CACHE/NAME-VERSION-HASH unless it is already there, and
# prints the binary's path. HASH covers the module's go.mod, go.sum and Go
# sources, so editing the module (e.g. tools/kube) rebuilds it.
build_cached() {
	local name=$1 version=$2 moddir=$3 pkg=$4
	shift 4
	local hash
	hash=$(cd "$moddir" && find . \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | sort -z |
		xargs -0 sha256sum | sha256sum | cut -c1-10)
	local out="$BIN_CACHE/$name-$version-$hash"
	if [[ -x "$out" ]]; then
		echo "$out"
		return 0
	fi
	log "building $name $version (cached afterwards in $out; a cold build takes minutes on 2 cores)"
	local start=$SECONDS tmp
	tmp=$(mktemp "$out.XXXXXX")
	(cd "$moddir" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $*" -o "$tmp" "$pkg") >&2 ||
		{ rm -f "$tmp"; die "building $name failed"; }
	chmod 0755 "$tmp"
	mv "$tmp" "$out"
	log "built $name in $((SECONDS - start))s"
	echo "$out"
}

# install_cached NAME VERSION PKG: `go install PKG@VERSION` (a tool from the
# Go module proxy, no binary download) into $BIN_CACHE/NAME-VERSION, once;
# prints the binary's path.
install_cached() {
	local name=$1 version=$2 pkg=$3
	local out="$BIN_CACHE/$name-$version"
	if [[ ! -x $out ]]; then
		log "building $name $version (cached afterwards in $out)"
		local tmp
		tmp=$(mktemp -d)
		GOBIN="$tmp" GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" "$pkg@$version" >&2 ||
			{ rm -rf "$tmp"; die "building $name failed"; }
		mv "$tmp/$(basename "$pkg")" "$out"
		rm -rf "$tmp"
	fi
	echo "$out"
}
