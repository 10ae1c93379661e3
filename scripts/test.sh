#!/usr/bin/env bash
# The whole test run, as CI runs it, on a fresh machine: installs what is
# missing, checks generated code and formatting, runs golangci-lint
# (scripts/lint.sh), starts Apache Kafka for the integration suite and
# Apicurio Registry for the schema-registry tests, runs every test with the
# race detector, stops both.
#   scripts/test.sh                   everything
#   SKIP_KAFKA=1 scripts/test.sh      without the real-broker suite
#   SKIP_REGISTRY=1 scripts/test.sh   without the real-registry tests
# INARIOUS_KAFKA_BROKERS / INARIOUS_SCHEMA_REGISTRY already set: those are
# used instead of starting a broker / a registry.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "missing: $*; install it with apt-get" >&2
    return 1
  fi
}

command -v protoc >/dev/null || apt_install protobuf-compiler
[ -x scripts/install-chromium.sh ] && scripts/install-chromium.sh

echo "== generated code is current"
scripts/genproto.sh
git diff --exit-code -- codecs/ || { echo "codecs/activitypb is stale: run go generate ./codecs/... and commit" >&2; exit 1; }

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go'))
[ -z "$unformatted" ] || { echo "not gofmt-formatted: $unformatted" >&2; exit 1; }
go vet ./...

echo "== golangci-lint (scripts/lint.sh)"
scripts/lint.sh

# Quietly, so that go test's own summary stays the last thing printed.
stop_kafka() { scripts/kafka.sh stop >/dev/null 2>&1 || true; }
stop_registry() { scripts/registry.sh stop >/dev/null 2>&1 || true; }
cleanups=()
trap 'for c in "${cleanups[@]}"; do "$c"; done' EXIT

# The registry starts in the background while Kafka starts (it is ready in
# about 5 s, Kafka in about 25 s), so it adds next to nothing to the run.
registry_pid=
if [ "${SKIP_REGISTRY:-}" != 1 ] && [ -z "${INARIOUS_SCHEMA_REGISTRY:-}" ]; then
  echo "== starting Apicurio Registry (in the background)"
  cleanups+=(stop_registry)
  export REGISTRY_PORT=${REGISTRY_PORT:-18081} REGISTRY_MANAGEMENT_PORT=${REGISTRY_MANAGEMENT_PORT:-18082}
  registry_log=$(mktemp)
  scripts/registry.sh start >"$registry_log" 2>&1 &
  registry_pid=$!
fi

if [ "${SKIP_KAFKA:-}" != 1 ] && [ -z "${INARIOUS_KAFKA_BROKERS:-}" ]; then
  echo "== starting Apache Kafka"
  cleanups+=(stop_kafka)
  # Not 9092, so a one-command Inarious (embedded broker on 9092) can run beside the tests.
  export KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093
  KAFKA_FRESH=1 scripts/kafka.sh start
  export INARIOUS_KAFKA_BROKERS=127.0.0.1:19092
fi

if [ -n "$registry_pid" ]; then
  echo "== waiting for Apicurio Registry"
  status=0
  wait "$registry_pid" || status=$?
  cat "$registry_log"
  rm -f "$registry_log"
  [ "$status" = 0 ] || { echo "the schema registry did not start" >&2; exit 1; }
  export INARIOUS_SCHEMA_REGISTRY=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
fi

echo "== go test -race ./..."
go test -race -count=1 -timeout 30m ./...
