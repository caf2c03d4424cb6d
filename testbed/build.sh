#!/usr/bin/env bash
# Builds the test bed's kube-apiserver and etcd from the Go module proxy and caches them outside the
# repository, keyed by version, so only the first run pays for the build (15-30 minutes on 2 cores).
#
#   testbed/build.sh            build what is missing, then print the two binary paths
#   KUBE_VERSION, ETCD_VERSION  override the pinned versions
#   OMNI_KUBE_CACHE             cache directory (default: $XDG_CACHE_HOME/omni_kube or ~/.cache/omni_kube)
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.33.13}"
ETCD_VERSION="${ETCD_VERSION:-3.5.21}"
CACHE="${OMNI_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omni_kube}"
KUBE_BIN="$CACHE/kube-apiserver-v$KUBE_VERSION/kube-apiserver"
ETCD_BIN="$CACHE/etcd-v$ETCD_VERSION/etcd"

log() { printf '[testbed build] %s\n' "$*" >&2; }

GO_FALLBACK_VERSION="1.24.13"

# kube-apiserver 1.33 needs Go >= 1.24. A Go >= 1.21 switches toolchains by itself (GOTOOLCHAIN);
# with no Go at all, fetch the official toolchain from the Go module proxy (golang.org/toolchain).
require_go() {
  if command -v go >/dev/null; then
    local have
    have="$(go env GOVERSION | sed 's/^go//')"
    if [ "$(printf '%s\n1.24\n' "$have" | sort -V | head -1)" != "1.24" ]; then
      export GOTOOLCHAIN="go$GO_FALLBACK_VERSION"
      log "Go $have is older than 1.24: using toolchain $GOTOOLCHAIN from the module proxy"
    fi
    return
  fi
  local goroot="$CACHE/go-$GO_FALLBACK_VERSION"
  if [ ! -x "$goroot/bin/go" ]; then
    local proxy="${GOPROXY:-https://proxy.golang.org}"
    proxy="${proxy%%,*}"
    local zip="$CACHE/go-$GO_FALLBACK_VERSION.zip"
    log "no Go found: downloading Go $GO_FALLBACK_VERSION from $proxy"
    mkdir -p "$CACHE"
    curl -fsSL -o "$zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_FALLBACK_VERSION.linux-amd64.zip"
    rm -rf "$goroot.tmp" && mkdir -p "$goroot.tmp"
    python3 -m zipfile -e "$zip" "$goroot.tmp"
    # The module zip holds the GOROOT under golang.org/toolchain@<version>/.
    mv "$goroot.tmp"/golang.org/toolchain@*/ "$goroot" && rm -rf "$goroot.tmp" "$zip"
    chmod +x "$goroot"/bin/* "$goroot"/pkg/tool/*/*
  fi
  export PATH="$goroot/bin:$PATH" GOTOOLCHAIN=local
}

# Prints one line per 100 packages compiled, so a long build shows it is alive without flooding the log.
progress() {
  awk -v what="$1" '/[ :]/ { print > "/dev/stderr"; next } { n++; if (n % 100 == 0) { printf "[testbed build] %s: %d packages compiled\n", what, n > "/dev/stderr"; fflush("/dev/stderr") } }
    END { printf "[testbed build] %s: %d packages compiled in total\n", what, n > "/dev/stderr" }'
}

# Builds into a temporary directory and renames at the end, so an interrupted build never leaves a
# half-written binary in the cache.
build_kube_apiserver() {
  local work out
  work="$(mktemp -d)"
  out="$(dirname "$KUBE_BIN")"
  log "building kube-apiserver v$KUBE_VERSION (first run only; cached in $out)"
  cd "$work"
  go mod init omni_kube.local/kube-apiserver-build >/dev/null 2>&1
  go mod edit -go=1.24.0
  go mod edit -require="k8s.io/kubernetes@v$KUBE_VERSION"
  # k8s.io/kubernetes requires its staging modules as v0.0.0 and replaces them with local paths, which
  # do not apply to a dependent module: point each at its published v0.x release instead.
  local gomod staging=()
  gomod="$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')"
  mapfile -t staging < <(sed -n 's/^\s*\(k8s\.io\/[^ ]*\) v0\.0\.0$/\1/p' "$gomod" | sort -u)
  local minor="${KUBE_VERSION#1.}"
  for module in "${staging[@]}"; do
    go mod edit -replace="$module=$module@v0.$minor"
  done
  log "resolving ${#staging[@]} staging modules and downloading dependencies"
  cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go mod tidy >/dev/null 2>&1 || go mod tidy
  mkdir -p "$out"
  CGO_ENABLED=0 go build -v -trimpath -ldflags="-s -w" -o "$work/kube-apiserver" \
    k8s.io/kubernetes/cmd/kube-apiserver 2>&1 | progress kube-apiserver
  [ -x "$work/kube-apiserver" ] || { log "kube-apiserver build failed"; exit 1; }
  mv "$work/kube-apiserver" "$KUBE_BIN.tmp" && mv "$KUBE_BIN.tmp" "$KUBE_BIN"
  cd / && rm -rf "$work"
  log "kube-apiserver ready: $KUBE_BIN"
}

build_etcd() {
  local work out
  work="$(mktemp -d)"
  out="$(dirname "$ETCD_BIN")"
  log "building etcd v$ETCD_VERSION (first run only; cached in $out)"
  cd "$work"
  go mod init omni_kube.local/etcd-build >/dev/null 2>&1
  # etcd's server module cannot be 'go install'ed (its go.mod has replace directives): a wrapper main does.
  cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod edit -require="go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  go mod tidy >/dev/null 2>&1 || go mod tidy
  mkdir -p "$out"
  CGO_ENABLED=0 go build -v -trimpath -ldflags="-s -w" -o "$work/etcd" . 2>&1 | progress etcd
  [ -x "$work/etcd" ] || { log "etcd build failed"; exit 1; }
  mv "$work/etcd" "$ETCD_BIN.tmp" && mv "$ETCD_BIN.tmp" "$ETCD_BIN"
  cd / && rm -rf "$work"
  log "etcd ready: $ETCD_BIN"
}

if [ ! -x "$ETCD_BIN" ]; then require_go; (build_etcd); fi
if [ ! -x "$KUBE_BIN" ]; then require_go; (build_kube_apiserver); fi
printf 'KUBE_APISERVER_BIN=%s\nETCD_BIN=%s\n' "$KUBE_BIN" "$ETCD_BIN"
