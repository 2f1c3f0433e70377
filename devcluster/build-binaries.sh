#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-controller-manager and kubectl from Go modules (no prebuilt downloads).
# Binaries are cached outside the repository, keyed by version; a warm cache makes this a no-op.
# Usage: build-binaries.sh        (prints the bin directory on its last line)
#        build-binaries.sh cnpg   (builds CloudNativePG's manager; prints its path on the last line)
#        build-binaries.sh helm   (builds only Helm; prints the helm binary's path on its last line)
set -euo pipefail

K8S_VERSION="${CNPG_MCP_K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${CNPG_MCP_ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${CNPG_MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-mcp}"
BIN_DIR="$CACHE_ROOT/bin-k8s-$K8S_VERSION-etcd-$ETCD_VERSION"

CNPG_VERSION="${CNPG_MCP_CNPG_VERSION:-v1.30.0}"

if [ "${1:-}" = "cnpg" ]; then
  # CloudNativePG's operator binary (its admission webhooks serve the local control plane).
  # Its own lock: it never waits for, or blocks, a Kubernetes build.
  CNPG_BIN="$CACHE_ROOT/bin-cnpg-$CNPG_VERSION/manager"
  [ -x "$CNPG_BIN" ] && { echo "$CNPG_BIN"; exit 0; }
  command -v go >/dev/null || { echo "error: Go is required to build the CloudNativePG manager (go not found on PATH)" >&2; exit 1; }
  mkdir -p "$(dirname "$CNPG_BIN")"
  exec 9>"$CACHE_ROOT/.build-cnpg.lock"
  flock 9
  [ -x "$CNPG_BIN" ] && { echo "$CNPG_BIN"; exit 0; }
  export CGO_ENABLED=0 GOFLAGS=-mod=mod
  start=$(date +%s)
  echo "building the CloudNativePG manager $CNPG_VERSION into $CNPG_BIN; a cold build takes 3-7 minutes" >&2
  src="$CACHE_ROOT/src-cnpg-$CNPG_VERSION"
  mkdir -p "$src" && cd "$src"
  [ -f go.mod ] || go mod init example.invalid/cnpgbin >/dev/null 2>&1
  # `go get` of the package, not the module: the build needs the package's whole import graph.
  go get "github.com/cloudnative-pg/cloudnative-pg/cmd/manager@$CNPG_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$CNPG_BIN.tmp" github.com/cloudnative-pg/cloudnative-pg/cmd/manager >&2
  mv "$CNPG_BIN.tmp" "$CNPG_BIN"
  echo "CloudNativePG manager built in $(( $(date +%s) - start ))s" >&2
  echo "$CNPG_BIN"
  exit 0
fi

# Helm (deploy/helm/ is tested with it) from its Go module, cached by version like the control plane.
HELM_VERSION="${CNPG_MCP_HELM_VERSION:-v4.3.2}"
build_helm() {
  local dir="$CACHE_ROOT/bin-helm-$HELM_VERSION" src="$CACHE_ROOT/src-helm-$HELM_VERSION" major
  if [ ! -x "$dir/helm" ]; then
    command -v go >/dev/null || { echo "error: Go is required to build Helm (go not found on PATH)" >&2; exit 1; }
    mkdir -p "$dir" "$src"
    exec 8>"$CACHE_ROOT/.build-helm.lock"
    flock 8
    if [ ! -x "$dir/helm" ]; then
      major=$(echo "$HELM_VERSION" | cut -d. -f1)
      cd "$src"
      [ -f go.mod ] || go mod init example.invalid/helmbin >/dev/null 2>&1
      CGO_ENABLED=0 GOFLAGS=-mod=mod go get "helm.sh/helm/$major@$HELM_VERSION" >&2
      CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
        -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION" \
        -o "$dir/helm.tmp" "helm.sh/helm/$major/cmd/helm" >&2
      mv "$dir/helm.tmp" "$dir/helm"
    fi
  fi
  echo "$dir/helm"
}
if [ "${1:-}" = "helm" ]; then mkdir -p "$CACHE_ROOT"; build_helm; exit 0; fi

K8S_BINARIES="kube-apiserver kube-controller-manager kubectl"
have_k8s() { for b in $K8S_BINARIES; do [ -x "$BIN_DIR/$b" ] || return 1; done; }

if [ -x "$BIN_DIR/etcd" ] && have_k8s; then
  echo "$BIN_DIR"
  exit 0
fi
command -v go >/dev/null || { echo "error: Go is required to build the control plane (go not found on PATH)" >&2; exit 1; }
mkdir -p "$BIN_DIR"
# One build at a time per cache (parallel test sessions may all ask for the binaries).
exec 9>"$CACHE_ROOT/.build.lock"
flock 9
if [ -x "$BIN_DIR/etcd" ] && have_k8s; then echo "$BIN_DIR"; exit 0; fi
export CGO_ENABLED=0 GOFLAGS=-mod=mod

build_etcd() {
  local src="$CACHE_ROOT/src-etcd-$ETCD_VERSION"
  mkdir -p "$src" && cd "$src"
  [ -f go.mod ] || go mod init example.invalid/etcdbin >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$BIN_DIR/etcd.tmp" "$BIN_DIR/etcd"
}

build_kubernetes() {
  local src="$CACHE_ROOT/src-k8s-$K8S_VERSION" minor staging upstream_gomod module godebug
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  staging="v0.${K8S_VERSION#v1.}"
  mkdir -p "$src" && cd "$src"
  [ -f go.mod ] || go mod init example.invalid/k8sbins >/dev/null 2>&1
  # The replace list comes from the upstream go.mod: every staging module maps to its v0.Y.Z tag.
  upstream_gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  for module in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$upstream_gomod"); do
    go mod edit -replace="$module=$module@$staging"
  done
  godebug=$(sed -n 's#^godebug \(.*\)#\1#p' "$upstream_gomod" | head -n1)
  [ -n "$godebug" ] && go mod edit -godebug="$godebug" 2>/dev/null || true
  go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  go mod tidy >&2
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  go build -trimpath -ldflags "$ldflags" -o "$src/out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl >&2
  for b in $K8S_BINARIES; do mv "$src/out/$b" "$BIN_DIR/"; done
}

start=$(date +%s)
echo "building the control plane (k8s $K8S_VERSION, etcd $ETCD_VERSION) into $BIN_DIR; a cold build takes 10-25 minutes" >&2
[ -x "$BIN_DIR/etcd" ] || build_etcd
have_k8s || build_kubernetes
echo "control plane built in $(( $(date +%s) - start ))s" >&2
echo "$BIN_DIR"
