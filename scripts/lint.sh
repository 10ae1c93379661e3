#!/usr/bin/env bash
# golangci-lint with the repo's .golangci.yml: formatting (gofmt, goimports,
# gci: standard library, then modules, then this module) and the linters.
# Installs the pinned version first when it is missing: built from source by
# go install (about 1.5 min on 2 cores with empty Go caches) into
# .cache/golangci-lint/<version>, not into go.mod, whose dependencies it would
# otherwise share.
#   scripts/lint.sh        check; fails on any finding or formatting diff
#   scripts/lint.sh fmt    rewrite formatting and imports in place
set -euo pipefail
cd "$(dirname "$0")/.."

version=2.15.0
dir=${GOLANGCI_LINT_DIR:-$PWD/.cache/golangci-lint/$version}
lint=$dir/golangci-lint

# Rebuilt when absent, of another version, or built by another Go than the
# one here (golangci-lint refuses code for a newer Go than its own).
built_with() { local v; v=$(go version "$1" 2>/dev/null) || return 0; echo "${v##* }"; }
if [ ! -x "$lint" ] || [ "$("$lint" version --short 2>/dev/null)" != "$version" ] ||
  [ "$(built_with "$lint")" != "$(go env GOVERSION)" ]; then
  echo "== installing golangci-lint v$version into $dir"
  rm -f "$lint"
  GOBIN=$dir go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$version"
fi

if [ "${1:-}" = fmt ]; then
  exec "$lint" fmt ./...
fi
"$lint" fmt --diff ./... || { echo "imports or formatting differ (above): run scripts/lint.sh fmt" >&2; exit 1; }
"$lint" run ./...
