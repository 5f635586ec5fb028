#!/bin/sh
# Installs the npm dependencies of the Node.js runner (runner.mjs, used by
# the javascript and typescript kernels) into kernels/node/node_modules,
# exactly as package-lock.json pins them. Idempotent: does nothing when
# node_modules was installed from the current package-lock.json.
#
#   kernels/node/install.sh [--runtime-only]
#
# --runtime-only is accepted for the project's install script and changes
# nothing: the runner has no development dependencies.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
stamp=node_modules/.e2b-ci-lock

for tool in node npm; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "kernels/node/install.sh: $tool not found (install nodejs and npm)" >&2
		exit 1
	fi
done

if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp" &&
	[ -f node_modules/acorn/package.json ] &&
	[ -f node_modules/sucrase/package.json ]; then
	echo "kernels/node: node_modules is up to date"
	exit 0
fi

echo "kernels/node: npm ci"
npm ci --omit=dev --no-audit --no-fund --ignore-scripts
cp package-lock.json "$stamp"
