#!/usr/bin/env bash
# Builds the test bed's Kubernetes from the Go module proxy and caches it outside the repository,
# keyed by version, so only the first run pays for the build (about TIME on 2 cores):
# kube-apiserver, kube-controller-manager and kube-scheduler from one k8s.io/kubernetes module, with
# the version ldflags Kubernetes' own build sets (hack/lib/version.sh), so /version tells the truth;
# etcd at the version that Kubernetes release recommends; KWOK to simulate nodes and pods.
#
#   testbed/build.sh            build what is missing, then print NAME=path lines, one per binary
#   KUBE_VERSION                Kubernetes release (default 1.37.2; 1.34.x is the oldest we claim)
#   ETCD_VERSION                override the etcd that KUBE_VERSION recommends
#   KWOK_VERSION                KWOK release (default 0.8.0)
#   OMNI_KUBE_CACHE             cache directory (default: $XDG_CACHE_HOME/omni_kube or ~/.cache/omni_kube)
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"
CACHE="${OMNI_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omni_kube}"
KUBE_DIR="$CACHE/kubernetes-v$KUBE_VERSION"
KUBE_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler)
KWOK_BIN="$CACHE/kwok-v$KWOK_VERSION/kwok"

log() { printf '[testbed build] %s\n' "$*" >&2; }

# Kubernetes 1.37 and KWOK 0.8 need Go >= 1.26.
GO_MIN="1.26"
GO_FALLBACK_VERSION="1.26.8"

version_at_least() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$2" ]; }

# A Go >= 1.21 switches toolchains by itself (GOTOOLCHAIN); with an older Go or none at all, fetch
# the official toolchain from the Go module proxy (golang.org/toolchain).
require_go() {
  if command -v go >/dev/null; then
    local have
    have="$(go env GOVERSION | sed 's/^go//')"
    if version_at_least "$have" "$GO_MIN"; then return; fi
    if version_at_least "$have" 1.21; then
      export GOTOOLCHAIN="go$GO_FALLBACK_VERSION"
      log "Go $have is older than $GO_MIN: using toolchain $GOTOOLCHAIN from the module proxy"
      return
    fi
    log "Go $have is too old to switch toolchains by itself"
  fi
  local goroot="$CACHE/go-$GO_FALLBACK_VERSION"
  if [ ! -x "$goroot/bin/go" ]; then
    local proxy="${GOPROXY:-https://proxy.golang.org}"
    proxy="${proxy%%,*}"
    local zip="$CACHE/go-$GO_FALLBACK_VERSION.zip"
    log "downloading Go $GO_FALLBACK_VERSION from $proxy"
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

# Moves a finished build into the cache in one rename, so an interrupted build never leaves a
# half-written binary there.
install_dir() {
  local from="$1" to="$2"
  mkdir -p "$(dirname "$to")"
  rm -rf "$to.tmp" && mv "$from" "$to.tmp" && rm -rf "$to" && mv "$to.tmp" "$to"
}

# Where `go mod download` put a module, and its go.mod file.
module_field() { go mod download -json "$1" | sed -n "s/^\s*\"$2\": \"\(.*\)\",\$/\1/p"; }

# The etcd version that this Kubernetes release names in build/dependencies.yaml.
recommended_etcd() {
  local dir
  dir="$(module_field "k8s.io/kubernetes@v$KUBE_VERSION" Dir)"
  awk '/name: "etcd"/ { getline; sub(/^ *version: */, ""); print; exit }' "$dir/build/dependencies.yaml"
}

# The -X flags of hack/lib/version.sh. The module proxy does not carry the git commit, so gitCommit
# and gitTreeState keep their defaults; the build date is the release's tag time, for a reproducible
# binary.
kube_version_ldflags() {
  local minor="${KUBE_VERSION#1.}" date
  minor="${minor%%.*}"
  # The proxy's .info file of the release holds its tag time, e.g. {"Version":"v1.37.2","Time":"..."}.
  date="$(sed -n 's/.*"Time": *"\([0-9T:-]*\)[^"]*".*/\1/p' "$(module_field "k8s.io/kubernetes@v$KUBE_VERSION" Info)")"
  [ -n "$date" ] || { log "no tag time in the module proxy's .info of k8s.io/kubernetes@v$KUBE_VERSION"; exit 1; }
  date="${date}Z"
  local flags=() key value
  for pair in "gitVersion=v$KUBE_VERSION" "gitMajor=1" "gitMinor=$minor" "buildDate=$date"; do
    key="${pair%%=*}" value="${pair#*=}"
    flags+=("-X k8s.io/client-go/pkg/version.$key=$value" "-X k8s.io/component-base/version.$key=$value")
  done
  echo "-s -w ${flags[*]}"
}

build_kubernetes() {
  local work
  work="$(mktemp -d)"
  log "building ${KUBE_COMPONENTS[*]} v$KUBE_VERSION (first run only; cached in $KUBE_DIR)"
  cd "$work"
  go mod init omni_kube.local/kubernetes-build >/dev/null 2>&1
  go mod edit -go="$GO_MIN.0"
  go mod edit -require="k8s.io/kubernetes@v$KUBE_VERSION"
  # k8s.io/kubernetes requires its staging modules as v0.0.0 and replaces them with local paths, which
  # do not apply to a dependent module: point each at its published v0.x release instead.
  local gomod staging=()
  gomod="$(module_field "k8s.io/kubernetes@v$KUBE_VERSION" GoMod)"
  mapfile -t staging < <(sed -n 's/^\s*\(k8s\.io\/[^ ]*\) v0\.0\.0$/\1/p' "$gomod" | sort -u)
  local minor="${KUBE_VERSION#1.}"
  for module in "${staging[@]}"; do
    go mod edit -replace="$module=$module@v0.$minor"
  done
  log "resolving ${#staging[@]} staging modules and downloading dependencies"
  {
    printf '//go:build tools\n\npackage tools\n\n'
    for component in "${KUBE_COMPONENTS[@]}"; do printf 'import _ "k8s.io/kubernetes/cmd/%s"\n' "$component"; done
  } >tools.go
  go mod tidy >/dev/null 2>&1 || go mod tidy
  mkdir -p "$work/bin"
  local packages=()
  for component in "${KUBE_COMPONENTS[@]}"; do packages+=("k8s.io/kubernetes/cmd/$component"); done
  CGO_ENABLED=0 go build -v -trimpath -ldflags="$(kube_version_ldflags)" -o "$work/bin/" \
    "${packages[@]}" 2>&1 | progress kubernetes
  for component in "${KUBE_COMPONENTS[@]}"; do
    [ -x "$work/bin/$component" ] || { log "$component build failed"; exit 1; }
  done
  echo "$KUBE_RECIPE" >"$work/bin/recipe"
  install_dir "$work/bin" "$KUBE_DIR"
  cd / && rm -rf "$work"
  log "kubernetes ready: $KUBE_DIR"
}

build_etcd() {
  local work
  work="$(mktemp -d)"
  log "building etcd v$ETCD_VERSION (first run only; cached in $(dirname "$ETCD_BIN"))"
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
  mkdir -p "$work/bin"
  CGO_ENABLED=0 go build -v -trimpath -ldflags="-s -w" -o "$work/bin/etcd" . 2>&1 | progress etcd
  [ -x "$work/bin/etcd" ] || { log "etcd build failed"; exit 1; }
  install_dir "$work/bin" "$(dirname "$ETCD_BIN")"
  cd / && rm -rf "$work"
  log "etcd ready: $ETCD_BIN"
}

build_kwok() {
  local work
  work="$(mktemp -d)"
  log "building kwok v$KWOK_VERSION (first run only; cached in $(dirname "$KWOK_BIN"))"
  mkdir -p "$work/bin"
  # The flags of KWOK's own release build (hack/releases.sh).
  GOBIN="$work/bin" CGO_ENABLED=0 go install -v -trimpath \
    -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" 2>&1 | progress kwok
  [ -x "$work/bin/kwok" ] || { log "kwok build failed"; exit 1; }
  install_dir "$work/bin" "$(dirname "$KWOK_BIN")"
  rm -rf "$work"
  log "kwok ready: $KWOK_BIN"
}

# Names how the binaries are built: a cached build made another way is built again.
KUBE_RECIPE="version-ldflags-2"

kube_ready() {
  for component in "${KUBE_COMPONENTS[@]}"; do [ -x "$KUBE_DIR/$component" ] || return 1; done
  [ "$(cat "$KUBE_DIR/recipe" 2>/dev/null)" = "$KUBE_RECIPE" ]
}

etcd_recommended=""
if [ -z "${ETCD_VERSION:-}" ]; then
  etcd_recommended=1
  if [ -r "$KUBE_DIR/etcd-version" ]; then
    ETCD_VERSION="$(cat "$KUBE_DIR/etcd-version")"
  else
    require_go
    ETCD_VERSION="$(recommended_etcd)"
  fi
  if ! [[ "$ETCD_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    log "no etcd version found for Kubernetes $KUBE_VERSION (got '$ETCD_VERSION'): set ETCD_VERSION," \
      "or remove $KUBE_DIR/etcd-version if it is there"
    exit 1
  fi
fi
ETCD_BIN="$CACHE/etcd-v$ETCD_VERSION/etcd"

if [ ! -x "$ETCD_BIN" ]; then require_go; (build_etcd); fi
if ! kube_ready; then require_go; (build_kubernetes); fi
[ -z "$etcd_recommended" ] || [ -r "$KUBE_DIR/etcd-version" ] || { echo "$ETCD_VERSION" >"$KUBE_DIR/etcd-version.tmp" && mv "$KUBE_DIR/etcd-version.tmp" "$KUBE_DIR/etcd-version"; }
if [ ! -x "$KWOK_BIN" ]; then require_go; (build_kwok); fi
printf 'KUBE_VERSION=%s\nKUBE_APISERVER_BIN=%s\nKUBE_CONTROLLER_MANAGER_BIN=%s\nKUBE_SCHEDULER_BIN=%s\nETCD_BIN=%s\nKWOK_BIN=%s\n' \
  "$KUBE_VERSION" "$KUBE_DIR/kube-apiserver" "$KUBE_DIR/kube-controller-manager" "$KUBE_DIR/kube-scheduler" "$ETCD_BIN" "$KWOK_BIN"
