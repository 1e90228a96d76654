#!/usr/bin/env bash
# Builds the project's collector distribution from collector/builder-config.yaml
# with the OpenTelemetry Collector Builder (ocb), into a cache outside the
# repository keyed by the manifest's sha256, and links it to
# .collector/otelcol-monitor. Only a changed manifest rebuilds: a fresh clone on
# a machine that has built the same manifest before links the cached binary.
#
#   OTEL_MONITOR_CACHE      cache root (default ~/.cache/otel-monitor)
#   COLLECTOR_BUILD_PROCS   GOMAXPROCS and go build -p for the build (default: the cores)
set -euo pipefail
cd "$(dirname "$0")/.."

OCB_VERSION=v0.161.0   # the collector core release of every module in the manifest
MANIFEST=collector/builder-config.yaml
LINK=.collector/otelcol-monitor

command -v go >/dev/null || { echo "make collector: Go not found (https://go.dev/doc/install)" >&2; exit 1; }
sha=$(sha256sum "$MANIFEST" | cut -c1-64)
cache=${OTEL_MONITOR_CACHE:-$HOME/.cache/otel-monitor}/collector
binary=$cache/$sha/otelcol-monitor
mkdir -p "$(dirname "$LINK")"

if [ -x "$binary" ]; then
  echo "collector: cached build of $MANIFEST (sha256 ${sha:0:12}) at $binary"
else
  procs=${COLLECTOR_BUILD_PROCS:-$(nproc)}
  mkdir -p "$cache/bin"
  ocb=$cache/bin/ocb-$OCB_VERSION
  start=$(date +%s)
  if [ ! -x "$ocb" ]; then
    GOFLAGS=-mod=mod GOBIN="$cache/bin/tmp.$$" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
    mv "$cache/bin/tmp.$$/builder" "$ocb" && rmdir "$cache/bin/tmp.$$"
  fi
  # Build in a private folder, then move into place: two builds at once never
  # see each other's half-written binary.
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  sed "s#^\( *output_path:\).*#\1 $work/src#" "$MANIFEST" > "$work/builder-config.yaml"
  echo "collector: building $MANIFEST (sha256 ${sha:0:12}) with ocb $OCB_VERSION, $procs processes; takes minutes the first time"
  if ! (cd "$work" && GOFLAGS="-mod=mod -p=$procs" GOMAXPROCS=$procs \
        "$ocb" --config builder-config.yaml --ldflags="-s -w" >build.log 2>&1); then
    tail -40 "$work/build.log" >&2
    echo "make collector: the build failed (full log above, last 40 lines)" >&2
    exit 1
  fi
  mkdir -p "$cache/$sha"
  cp "$MANIFEST" "$cache/$sha/builder-config.yaml"
  mv "$work/src/otelcol-monitor" "$binary.tmp.$$" && mv "$binary.tmp.$$" "$binary"
  echo "collector: built in $(( $(date +%s) - start )) s: $binary"
fi
ln -sfn "$binary" "$LINK"
"$LINK" --version
