#!/usr/bin/env bash
# The whole test run, as CI runs it, on a fresh machine: installs what is
# missing, checks generated code and formatting, starts Apache Kafka for the
# integration suite, runs every test with the race detector, stops Kafka.
#   scripts/test.sh            everything
#   SKIP_KAFKA=1 scripts/test.sh   without the real-broker suite
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

# Quietly, so that go test's own summary stays the last thing printed.
stop_kafka() { scripts/kafka.sh stop >/dev/null 2>&1 || true; }
if [ "${SKIP_KAFKA:-}" != 1 ] && [ -z "${INARIOUS_KAFKA_BROKERS:-}" ]; then
  echo "== starting Apache Kafka"
  trap stop_kafka EXIT
  # Not 9092, so a one-command Inarious (embedded broker on 9092) can run beside the tests.
  export KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093
  KAFKA_FRESH=1 scripts/kafka.sh start
  export INARIOUS_KAFKA_BROKERS=127.0.0.1:19092
fi

echo "== go test -race ./..."
go test -race -count=1 -timeout 30m ./...
