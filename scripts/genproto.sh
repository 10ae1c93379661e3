#!/usr/bin/env bash
# Regenerates the committed protobuf Go code. protoc comes from Debian's
# protobuf-compiler; protoc-gen-go is the version pinned by go.mod's tool directive.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
protoc --plugin=protoc-gen-go="$bin/protoc-gen-go" -I codecs/activitypb \
  --go_out=codecs/activitypb --go_opt=paths=source_relative codecs/activitypb/activity.proto
