#!/usr/bin/env bash
# Builds the trace and log backends that the end-to-end tests run (and that
# the compose stack runs as images of the same releases) from Go modules:
# Jaeger v2 and VictoriaLogs, both Apache-2.0. Cached outside the repository
# by release, linked into .collector/. Grafana Tempo and Loki (AGPL) are never
# built here.
#
#   OTEL_MONITOR_CACHE      cache root (default ~/.cache/otel-monitor)
#   COLLECTOR_BUILD_PROCS   GOMAXPROCS and go build -p (default: the cores)
set -euo pipefail
cd "$(dirname "$0")/.."

# name  module@version  main package
BACKENDS=(
  "jaeger github.com/jaegertracing/jaeger@v1.75.0 github.com/jaegertracing/jaeger/cmd/jaeger"
  "victoria-logs github.com/VictoriaMetrics/VictoriaLogs@v1.52.2 github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
)

command -v go >/dev/null || { echo "make backends: Go not found (https://go.dev/doc/install)" >&2; exit 1; }
cache=${OTEL_MONITOR_CACHE:-$HOME/.cache/otel-monitor}/backends
procs=${COLLECTOR_BUILD_PROCS:-$(nproc)}
mkdir -p .collector "$cache"

for entry in "${BACKENDS[@]}"; do
  read -r name module package <<<"$entry"
  version=${module#*@}
  binary=$cache/$name-$version/$name
  if [ -x "$binary" ]; then
    echo "backends: cached $name $version at $binary"
  else
    start=$SECONDS
    work=$(mktemp -d "$cache/build.XXXXXX")
    echo "backends: building $name $version ($procs processes); takes minutes the first time"
    # A module of its own: the program's go.mod has replace directives, so
    # `go install pkg@version` refuses it; `go get -tool` takes its requirements.
    if ! (cd "$work" && go mod init otel-monitor/backends >/dev/null 2>&1 \
          && GOFLAGS=-mod=mod go get -tool "$package@$version" >build.log 2>&1 \
          && GOFLAGS="-mod=mod -p=$procs" GOMAXPROCS=$procs \
             go build -ldflags="-s -w" -o "$name" "$package" >>build.log 2>&1); then
      tail -40 "$work/build.log" >&2
      rm -rf "$work"
      echo "make backends: building $name failed (last 40 lines above)" >&2
      exit 1
    fi
    mkdir -p "$(dirname "$binary")"
    mv "$work/$name" "$binary.tmp.$$" && mv "$binary.tmp.$$" "$binary"
    rm -rf "$work"
    echo "backends: built $name $version in $(( SECONDS - start )) s"
  fi
  ln -sfn "$binary" ".collector/$name"
done
