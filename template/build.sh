#!/bin/sh
# Builds the e2b-ci custom template on E2B (template/template.mjs) with E2B's
# Template SDK. Needs E2B_API_KEY; without it, says so and does nothing.
#
# Usage: E2B_API_KEY=e2b_... template/build.sh
#   E2B_TEMPLATE_NAME       template name (default e2b-ci)
#   E2B_TEMPLATE_CPUS       vCPUs of its sandboxes (default 2)
#   E2B_TEMPLATE_MEMORY_MB  memory of its sandboxes (default 2048)
# Offline, to see what would be built: node template/template.mjs dockerfile
set -eu

if [ -z "${E2B_API_KEY:-}" ]; then
	echo "build.sh: E2B_API_KEY is not set; nothing built." >&2
	echo "build.sh: get a key at https://e2b.dev/dashboard, then:" \
		"E2B_API_KEY=e2b_... $0" >&2
	exit 2
fi
if ! command -v node >/dev/null 2>&1; then
	echo "build.sh: node (>= 20) is required" >&2
	exit 1
fi

cd "$(dirname "$0")"
# The SDK version is pinned by package-lock.json.
if [ ! -d node_modules/e2b ]; then
	npm ci --no-audit --no-fund
fi
exec node template.mjs build
