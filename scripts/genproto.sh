#!/usr/bin/env bash
# Regenerates the committed protobuf Go code. protoc comes from Debian's
# protobuf-compiler; protoc-gen-go and protoc-gen-go-vtproto (reflection-free
# marshalling for the hot path) are the versions pinned by go.mod's tool directives.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-vtproto" github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto
protoc --plugin=protoc-gen-go="$bin/protoc-gen-go" --plugin=protoc-gen-go-vtproto="$bin/protoc-gen-go-vtproto" \
  -I codecs/activitypb \
  --go_out=codecs/activitypb --go_opt=paths=source_relative \
  --go-vtproto_out=codecs/activitypb --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+unmarshal_unsafe+size \
  codecs/activitypb/activity.proto
