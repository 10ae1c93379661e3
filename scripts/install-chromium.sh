#!/bin/sh
# Installs Debian's chromium for the dashboard browser test
# (internal/dashboard/browser_test.go) unless /usr/bin/chromium is already there.
# Idempotent; needs root and apt. Browsers downloaded by tools do not work here.
set -eu

if [ -x /usr/bin/chromium ]; then
	echo "chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-chromium: apt-get not found; install chromium so that /usr/bin/chromium exists" >&2
	exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium
/usr/bin/chromium --version
