#!/usr/bin/env bash
# SDK tests: the official @e2b/code-interpreter (npm, unmodified) in its
# debug mode drives e2b-ci on localhost:49999.
#
#   tests/sdk/run.sh /absolute/path/to/e2b-ci      (make sdk)
#
# Installs the locked SDK when node_modules is missing or stale, refuses to
# run when something already listens on 49999 (debug mode has no other
# port), starts the daemon on the address `localhost` resolves to for node,
# waits for /health, runs `node --test`, stops the daemon with SIGTERM and
# fails if it does not exit 0 or leaves kernels behind.
set -euo pipefail

bin=${1:?usage: $0 /absolute/path/to/e2b-ci}
[[ $bin == /* && -x $bin ]] || { echo "run.sh: $bin: not an absolute path to an executable" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
port=49999
cd "$here"

# --- the SDK, exactly as locked
stamp=node_modules/.e2bci-lock
if [[ ! -f $stamp ]] || ! cmp -s package-lock.json "$stamp"; then
	npm ci --no-audit --no-fund
	cp package-lock.json "$stamp"
fi

# --- the address node connects to for "localhost" (127.0.0.1 or ::1)
addr=$(node -e 'require("dns").lookup("localhost", (e, a) => { if (e) throw e; console.log(a) })')

listening() { # host port: is anything accepting connections there?
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}
for h in 127.0.0.1 ::1; do
	if listening "$h" "$port"; then
		echo "run.sh: something already listens on [$h]:$port; stop it first" >&2
		exit 2
	fi
done

tmp=$(mktemp -d /tmp/e2bci-sdk.XXXXXX)
mkdir -p "$tmp/home" "$tmp/run" "$tmp/scratch"
log=$tmp/daemon.log
pid=
daemon_rc=

stop_daemon() {
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 200; i++)); do # 20 s
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "run.sh: daemon did not exit within 20 s of SIGTERM" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	daemon_rc=0
	wait "$pid" || daemon_rc=$?
	pid=
}

leftovers() { # processes whose command line mentions the runtime dir
	# Expand the list before grep starts, so grep does not find itself.
	local procs=(/proc/[0-9]*/cmdline)
	grep -l -F -- "$tmp/run" "${procs[@]}" 2>/dev/null | cut -d/ -f3 || true
}

cleanup() {
	local rc=$?
	stop_daemon
	local left
	left=$(leftovers)
	if [[ -n $left ]]; then
		echo "run.sh: processes left behind by the daemon: $left" >&2
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null || true
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Configuration comes from the flags below only.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^E2B_CI_' || true)
"$bin" --listen "$addr" --port "$port" --default-languages python,javascript \
	--cwd "$tmp/home" --runtime-dir "$tmp/run" \
	--envd-url "http://127.0.0.1:1" --keepalive-ms 300 >"$log" 2>&1 &
pid=$!

# --- wait for /health (60 s)
health() {
	node -e '
		fetch(process.argv[1], { signal: AbortSignal.timeout(2000) })
			.then(async (r) => process.exit(r.status === 200 && (await r.json()) === "OK" ? 0 : 1))
			.catch(() => process.exit(1))' "http://localhost:$port/health"
}
deadline=$((SECONDS + 60))
until health; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "run.sh: the daemon exited before /health answered; its log:" >&2
		cat "$log" >&2
		pid=
		exit 1
	fi
	if ((SECONDS >= deadline)); then
		echo "run.sh: /health did not answer 200 \"OK\" within 60 s; daemon log:" >&2
		cat "$log" >&2
		exit 1
	fi
	sleep 0.2
done

# --- the tests
unset E2B_API_KEY E2B_ACCESS_TOKEN E2B_SANDBOX_URL E2B_DOMAIN E2B_USER_AGENT_SOURCE
export E2B_DEBUG=true E2BCI_SDK_CWD="$tmp/home" E2BCI_SDK_TMP="$tmp/scratch"
status=0
# One file at a time: both use the default contexts of one daemon.
node --test --test-concurrency=1 sdk.test.mjs languages.test.mjs charts.test.mjs || status=$?

stop_daemon
if [[ $daemon_rc != 0 ]]; then
	echo "run.sh: daemon exit status after SIGTERM: $daemon_rc (want 0)" >&2
	status=1
fi
left=$(leftovers)
if [[ -n $left ]]; then
	echo "run.sh: kernels still running after the daemon exited: $left" >&2
	status=1
fi
if [[ $status != 0 ]]; then
	echo "run.sh: --- daemon log (last 200 lines) ---" >&2
	tail -n 200 "$log" >&2
fi
exit "$status"
