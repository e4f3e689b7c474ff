#!/usr/bin/env bash
# Build the pinned control plane (etcd, kube-apiserver, kube-controller-manager,
# kubectl) from Go modules into a cache outside the repository, keyed by version.
# A cache hit costs nothing; a cold build takes minutes (see docs/control-plane.md).
#
# kind/minikube/envtest downloads are unavailable on our machines (no Docker, no
# download sites), so the binaries come from the Go module proxy. k8s.io/kubernetes
# replaces its staging modules with ./staging paths, which do not exist when it is a
# dependency, so a wrapper module re-points each one at its published version.
set -euo pipefail

K8S_VERSION="${RSG_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${RSG_ETCD_VERSION:-v3.6.16}"
# kwok simulates nodes and kubelets, so that scheduled Pods run and become Ready.
KWOK_VERSION="${RSG_KWOK_VERSION:-v0.8.0}"
# metrics-server serves the resource metrics API (kubectl top, the HPA's cpu metrics)
# from the kubelets' (kwok's) /metrics/resource, through the aggregation layer.
METRICS_SERVER_VERSION="${RSG_METRICS_SERVER_VERSION:-v0.8.0}"
CACHE_ROOT="${RSG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rsg-operator}"
DEST="$CACHE_ROOT/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
BIN="$DEST/bin"
KUBERNETES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
BINARIES=(etcd "${KUBERNETES[@]}" kwok metrics-server)

all_present() {
  for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
  [[ "$(cat "$BIN/metrics-server.version" 2>/dev/null)" == "$METRICS_SERVER_VERSION" ]] || return 1
  [[ -f "$DEST/kwok-stages/metrics-resource.yaml" ]]
}

if all_present; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "build-control-plane: Go is required" >&2; exit 1; }
# Binaries are built into a staging directory and moved into place only when complete,
# so an interrupted build never leaves a truncated binary that looks cached.
STAGING="$DEST/staging"
rm -rf "$STAGING"
mkdir -p "$BIN" "$STAGING"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
started=$(date +%s)

build_kubernetes() {
  local work="$DEST/src/kubernetes" staging="${K8S_VERSION/v1./v0.}"
  mkdir -p "$work"
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
  local upstream_mod
  upstream_mod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
  {
    echo "module rsg-operator/control-plane-build"
    echo
    grep -E '^go [0-9.]+$' "$upstream_mod"
    grep -E '^godebug ' "$upstream_mod" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    # Every "k8s.io/x => ./staging/src/k8s.io/x" becomes "k8s.io/x => k8s.io/x v0.N.P".
    sed -nE 's#^[[:space:]]*(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+$#\t\1 => \1 '"$staging"'#p' "$upstream_mod"
    echo ")"
  } > "$work/go.mod"
  local pkg="k8s.io/component-base/version" cpkg="k8s.io/client-go/pkg/version"
  local major minor
  major=$(echo "$K8S_VERSION" | sed -E 's/^v([0-9]+)\..*/\1/')
  minor=$(echo "$K8S_VERSION" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')
  local ldflags="-s -w"
  for p in "$pkg" "$cpkg"; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local missing=()
  for cmd in "${KUBERNETES[@]}"; do
    [[ -x "$BIN/$cmd" ]] || missing+=("k8s.io/kubernetes/cmd/$cmd")
  done
  (
    cd "$work"
    for pkg in "${missing[@]}"; do
      go get -tool "$pkg@$K8S_VERSION"
    done
    go build -trimpath -ldflags "$ldflags" -o "$STAGING/" "${missing[@]}"
  )
}

build_etcd() {
  local work="$DEST/src/etcd"
  mkdir -p "$work"
  (
    cd "$work"
    [[ -f go.mod ]] || go mod init rsg-operator/etcd-build >/dev/null 2>&1
    go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -trimpath -ldflags "-s -w" -o "$STAGING/etcd" go.etcd.io/etcd/server/v3
  )
}

build_metrics_server() {
  local work="$DEST/src/metrics-server"
  mkdir -p "$work"
  (
    cd "$work"
    [[ -f go.mod ]] || go mod init rsg-operator/metrics-server-build >/dev/null 2>&1
    go get -tool "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
    go build -trimpath -ldflags "-s -w" -o "$STAGING/metrics-server" \
      sigs.k8s.io/metrics-server/cmd/metrics-server
  )
  echo "$METRICS_SERVER_VERSION" > "$STAGING/metrics-server.version"
}

build_kwok() {
  GOBIN="$STAGING" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  kwok_stages
}

# The bare kwok binary needs its stages (how a node or pod moves through its life) as
# configuration; the module ships its defaults ("fast" pods, nodes with lease heartbeats):
# they are taken from the pinned module, next to the binaries.
kwok_stages() {
  local module
  module="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  [[ -d "$module" ]] || go mod download "sigs.k8s.io/kwok@$KWOK_VERSION"
  mkdir -p "$DEST/kwok-stages"
  cp "$module"/node/fast/node-initialize.yaml \
     "$module"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
     "$module"/pod/fast/pod-ready.yaml "$module"/pod/fast/pod-complete.yaml \
     "$module"/pod/fast/pod-delete.yaml "$DEST/kwok-stages/"
  # Resource metrics as a kubelet serves them (/metrics/nodes/{nodeName}/metrics/resource,
  # the path the nodes name in their metrics.k8s.io/resource-metrics-path annotation),
  # with each pod's usage taken from its kwok.x-k8s.io/usage-{cpu,memory} annotations.
  local metrics
  metrics="$(dirname "$module")/metrics"
  cp "$metrics"/resource/metrics-resource.yaml "$metrics"/usage/usage-from-annotation.yaml \
     "$DEST/kwok-stages/"
}

[[ -x "$BIN/etcd" ]] || build_etcd >&2
[[ -x "$BIN/kwok" ]] || build_kwok >&2
[[ -f "$DEST/kwok-stages/metrics-resource.yaml" ]] || kwok_stages >&2
[[ "$(cat "$BIN/metrics-server.version" 2>/dev/null)" == "$METRICS_SERVER_VERSION" ]] ||
  build_metrics_server >&2
for b in "${KUBERNETES[@]}"; do
  if [[ ! -x "$BIN/$b" ]]; then build_kubernetes >&2; break; fi
done

for b in "${BINARIES[@]}"; do
  [[ -x "$STAGING/$b" ]] && mv -f "$STAGING/$b" "$BIN/$b"
done
[[ -f "$STAGING/metrics-server.version" ]] && mv -f "$STAGING/metrics-server.version" "$BIN/"
rm -rf "$STAGING"
all_present || { echo "build-control-plane: binaries missing after build" >&2; exit 1; }
echo "build-control-plane: built in $(( $(date +%s) - started ))s into $BIN" >&2
echo "$BIN"
