#!/usr/bin/env bash
# Build the pinned helm (v3) from its Go module into a cache outside the repository,
# keyed by version; print the binary's path. A cache hit costs nothing.
set -euo pipefail

HELM_VERSION="${RSG_HELM_VERSION:-v3.19.0}"
CACHE_ROOT="${RSG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rsg-operator}"
DEST="$CACHE_ROOT/helm/$HELM_VERSION"
if [[ -x "$DEST/bin/helm" ]]; then
  echo "$DEST/bin/helm"
  exit 0
fi
command -v go >/dev/null || { echo "build-helm: Go is required" >&2; exit 1; }
mkdir -p "$DEST"
# Built into a staging directory and moved into place when complete, so an
# interrupted build never leaves a binary that looks cached.
STAGING="$(mktemp -d "$DEST/staging.XXXXXX")"
trap 'rm -rf "$STAGING"' EXIT
started=$(date +%s)
GOBIN="$STAGING" GOFLAGS="${GOFLAGS:--buildvcs=false}" \
  go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
mkdir -p "$DEST/bin"
mv "$STAGING/helm" "$DEST/bin/helm"
echo "build-helm: helm $HELM_VERSION built in $(( $(date +%s) - started ))s" >&2
echo "$DEST/bin/helm"
