#!/usr/bin/env bash
# SDK tests: the official @e2b/code-interpreter (npm, unmodified) in its
# debug mode drives e2b-ci on localhost:49999, once per SDK release: the
# current one (tests/sdk/package-lock.json) and each older one kept in
# tests/sdk/releases/<version>/ with its own package-lock.json.
#
#   tests/sdk/run.sh /absolute/path/to/e2b-ci      (make sdk)
#   tests/sdk/run.sh --install                     (npm ci only, needs the network)
#
# E2BCI_SDK_RELEASES="current 2.3.3" runs a subset (names: current, or a
# directory name under releases/).
#
# Installs each locked SDK when its node_modules is missing or stale (so run
# --install outside a network namespace first, the tests inside one), refuses
# to run when something already listens on 49999 (debug mode has no other
# port). For each release: starts a fresh daemon on the address `localhost`
# resolves to for node, waits for /health, runs `node --test` over the same
# test files, stops the daemon with SIGTERM and fails if it does not exit 0
# or leaves kernels behind. Ends with a table of pass/fail/skip per release.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
port=49999
files=(sdk.test.mjs languages.test.mjs charts.test.mjs)

install_only=false
if [[ ${1:-} == --install ]]; then
	install_only=true
else
	bin=${1:?usage: $0 /absolute/path/to/e2b-ci | --install}
	[[ $bin == /* && -x $bin ]] || { echo "run.sh: $bin: not an absolute path to an executable" >&2; exit 2; }
fi
cd "$here"

# --- which releases, and where each one's package-lock.json is
releases=()
if [[ -n ${E2BCI_SDK_RELEASES:-} ]]; then
	read -r -a releases <<<"$E2BCI_SDK_RELEASES"
else
	releases=(current)
	for d in releases/*/; do
		[[ -f $d/package-lock.json ]] && releases+=("$(basename "$d")")
	done
fi
dir_of() { # release -> its directory
	if [[ $1 == current ]]; then echo "$here"; else echo "$here/releases/$1"; fi
}
for rel in "${releases[@]}"; do
	[[ -f $(dir_of "$rel")/package-lock.json ]] || { echo "run.sh: no release $rel (no $(dir_of "$rel")/package-lock.json)" >&2; exit 2; }
done

# --- each SDK, exactly as locked
for rel in "${releases[@]}"; do
	d=$(dir_of "$rel")
	stamp=$d/node_modules/.e2bci-lock
	if [[ ! -f $stamp ]] || ! cmp -s "$d/package-lock.json" "$stamp"; then
		(cd "$d" && npm ci --no-audit --no-fund)
		cp "$d/package-lock.json" "$stamp"
	fi
done
$install_only && exit 0

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
pid=
daemon_rc=
run=

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
	[[ -n $run ]] || return 0
	# Expand the list before grep starts, so grep does not find itself.
	local procs=(/proc/[0-9]*/cmdline)
	grep -l -F -- "$run/run" "${procs[@]}" 2>/dev/null | cut -d/ -f3 || true
}

kill_leftovers() {
	local left
	left=$(leftovers)
	[[ -n $left ]] || return 0
	echo "run.sh: processes left behind by the daemon: $left" >&2
	# shellcheck disable=SC2086
	kill -KILL $left 2>/dev/null || true
	return 1
}

cleanup() {
	local rc=$?
	stop_daemon
	kill_leftovers || true
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_daemon() { # log file
	# Configuration comes from the flags below only.
	local v
	while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^E2B_CI_' || true)
	"$bin" --listen "$addr" --port "$port" --default-languages python,javascript \
		--cwd "$run/home" --runtime-dir "$run/run" \
		--envd-url "http://127.0.0.1:1" --keepalive-ms 300 >"$1" 2>&1 &
	pid=$!
}

health() {
	node -e '
		fetch(process.argv[1], { signal: AbortSignal.timeout(2000) })
			.then(async (r) => process.exit(r.status === 200 && (await r.json()) === "OK" ? 0 : 1))
			.catch(() => process.exit(1))' "http://localhost:$port/health"
}

wait_healthy() { # log file; 60 s
	local deadline=$((SECONDS + 60))
	until health; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "run.sh: the daemon exited before /health answered; its log:" >&2
			cat "$1" >&2
			pid=
			return 1
		fi
		if ((SECONDS >= deadline)); then
			echo "run.sh: /health did not answer 200 \"OK\" within 60 s; daemon log:" >&2
			cat "$1" >&2
			return 1
		fi
		sleep 0.2
	done
}

count() { # tap file, key -> the number on its "# key N" summary line
	awk -v k="$2" '$1 == "#" && $2 == k { n = $3 } END { print n + 0 }' "$1"
}

unset E2B_API_KEY E2B_ACCESS_TOKEN E2B_SANDBOX_URL E2B_DOMAIN E2B_USER_AGENT_SOURCE
export E2B_DEBUG=true
status=0
summary=()
for rel in "${releases[@]}"; do
	run=$tmp/$rel
	mkdir -p "$run/home" "$run/run" "$run/scratch"
	log=$run/daemon.log
	tap=$run/tap
	vers=$(cd "$(dir_of "$rel")" && node -p 'const v = (p) => require(p + "/package.json").version;
		`${v("@e2b/code-interpreter")} (e2b ${v("e2b")})`')
	echo "=== $rel: @e2b/code-interpreter $vers"
	start_daemon "$log"
	wait_healthy "$log" || exit 1

	rel_status=0
	# One file at a time: they share the default contexts of one daemon.
	E2BCI_SDK_DIR=$(dir_of "$rel") E2BCI_SDK_CWD="$run/home" E2BCI_SDK_TMP="$run/scratch" \
		node --test --test-concurrency=1 \
		--test-reporter=spec --test-reporter-destination=stdout \
		--test-reporter=tap --test-reporter-destination="$tap" \
		"${files[@]}" || rel_status=1

	stop_daemon
	if [[ $daemon_rc != 0 ]]; then
		echo "run.sh: $rel: daemon exit status after SIGTERM: $daemon_rc (want 0)" >&2
		rel_status=1
	fi
	if ! kill_leftovers; then
		echo "run.sh: $rel: kernels were still running after the daemon exited" >&2
		rel_status=1
	fi
	if [[ $rel_status != 0 ]]; then
		echo "run.sh: $rel: --- daemon log (last 200 lines) ---" >&2
		tail -n 200 "$log" >&2
		status=1
	fi
	summary+=("$(printf '%-8s %-20s %5s %5s %5s  %s' "$rel" "$vers" "$(count "$tap" pass)" \
		"$(count "$tap" fail)" "$(count "$tap" skipped)" \
		"$([[ $rel_status == 0 ]] && echo ok || echo FAILED)")")
done

printf '\n%-8s %-20s %5s %5s %5s\n' release version pass fail skip
printf '%s\n' "${summary[@]}"
exit "$status"
