#!/bin/sh
# debug-probe.sh: one screen of facts about e2b-ci, for an operator inside a
# sandbox (installed as e2b-ci-debug-probe): the unit's state, the last
# journal lines, GET /health, GET /contexts, one `1+1` execution, and the
# daemon's process tree with RSS and oom_score_adj.
#
# Needs only sh, curl and /proc; systemctl/journalctl/ss when present. Where
# systemd is not PID 1 (containers, a daemon started by hand) it says so and
# goes on. Every request has a deadline, so a wedged daemon cannot hang it.
#
# Usage: debug-probe.sh [-u URL] [-p PID] [-n LINES] [-t SECONDS]
#   -u  base URL (default http://localhost:$E2B_CI_PORT, the port from the
#       environment, else from /etc/default/e2b-ci, else 49999)
#   -p  the daemon's pid (default: the unit's MainPID, else whoever listens
#       on the port, else the first process named e2b-ci)
#   -n  journal lines (default 10)
#   -t  deadline of the execute request, seconds (default 20)
# Exit status: 0 when /health is 200 and 1+1 gives 2, 1 otherwise.
set -u

unit=e2b-ci.service
envfile=/etc/default/e2b-ci
url='' pid='' how='' lines=10 tmo=20 width=150
while getopts u:p:n:t:h opt; do
	case $opt in
	u) url=${OPTARG%/} ;;
	p) pid=$OPTARG how="-p" ;;
	n) lines=$OPTARG ;;
	t) tmo=$OPTARG ;;
	*) sed -n '2,/^set -u/{/^#/s/^# \{0,1\}//p}' "$0"; exit 2 ;;
	esac
done

port=${E2B_CI_PORT:-}
if [ -z "$port" ] && [ -r "$envfile" ]; then
	port=$(sed -n 's/^[[:space:]]*E2B_CI_PORT=["]*\([0-9]*\).*/\1/p' "$envfile" | tail -n 1)
fi
port=${port:-49999}
[ -n "$url" ] || url=http://localhost:$port
case $url in
*://*:[0-9]*) port=${url##*:}; port=${port%%/*} ;;
esac

failed=
fail() { failed="$failed $1"; }
clip() { cut -c1-"$width"; }
section() { printf '== %s\n' "$*"; }

# systemd is running as PID 1 exactly when this directory exists
# (sd_booted(3)).
systemd=no
[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && systemd=yes
pid1=$(tr '\0' ' ' </proc/1/cmdline 2>/dev/null | cut -d' ' -f1)

section "e2b-ci probe $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)," \
	"up $(awk '{ printf "%dm", $1 / 60 }' /proc/uptime 2>/dev/null), $url"

section unit
if [ $systemd = yes ]; then
	systemctl show "$unit" -p ActiveState,SubState,UnitFileState,MainPID,NRestarts,ExecMainStatus,Result,StatusText,ActiveEnterTimestamp 2>&1 |
		tr '\n' ' ' | fold -s -w "$width" | sed 's/ *$//'
	echo
	if [ -z "$pid" ]; then
		pid=$(systemctl show "$unit" -p MainPID --value 2>/dev/null)
		[ "$pid" = 0 ] && pid=
		[ -n "$pid" ] && how="the unit's MainPID"
	fi
else
	echo "systemd not running (PID 1 is ${pid1:-unknown}): no unit status"
fi

section "journal, last $lines lines"
if [ $systemd = yes ] && command -v journalctl >/dev/null 2>&1; then
	journalctl -u "$unit" -n "$lines" --no-pager -q -o short-iso 2>&1 | clip
else
	echo "systemd not running: no journal (the daemon logs to its stderr)"
fi

if ! command -v curl >/dev/null 2>&1; then
	section HTTP
	echo "curl not installed: no HTTP checks"
	fail curl
else
	section "GET /health"
	out=$(curl -sS --max-time 3 -o /dev/null -w '%{http_code} in %{time_total}s' "$url/health" 2>&1)
	printf '%s\n' "$out" | tr '\n' ' ' | clip
	case $out in 200\ *) ;; *) fail health ;; esac

	section "GET /contexts"
	body=$(curl -sS --max-time 3 -w '\n%{http_code}' "$url/contexts" 2>&1)
	code=$(printf '%s\n' "$body" | tail -n 1)
	if [ "$code" = 200 ]; then
		printf '%s\n' "$body" | sed '$d' | sed 's/},{/}\n{/g; s/^\[//; s/\]$//' | clip
	else
		printf 'HTTP %s: ' "$code"
		printf '%s\n' "$body" | sed '$d' | tr '\n' ' ' | clip
		fail contexts
	fi

	section "POST /execute 1+1"
	start=$(date +%s.%N)
	body=$(curl -sS -N --max-time "$tmo" -H 'Content-Type: application/json' \
		-d '{"code":"1+1"}' -w '\n%{http_code}' "$url/execute" 2>&1)
	end=$(date +%s.%N)
	code=$(printf '%s\n' "$body" | tail -n 1)
	printf '%s\n' "$body" | sed '$d' | sed '/^$/d' | head -n 8 | clip
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
	if [ "$code" = 200 ] && printf '%s\n' "$body" |
		grep -q '"type": *"result".*"text": *"2"\|"text": *"2".*"type": *"result"'; then
		echo "-> 2, HTTP $code, ${secs}s"
	else
		echo "-> no result 2 (HTTP $code, ${secs}s)"
		fail execute
	fi
fi

section processes
if [ -z "$pid" ] && command -v ss >/dev/null 2>&1; then
	pid=$(ss -Hltnp "sport = :$port" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)
	how="listening on :$port"
	[ -n "$pid" ] || echo "nothing listens on :$port"
elif [ -z "$pid" ]; then
	for d in /proc/[0-9]*; do
		[ "$(cat "$d/comm" 2>/dev/null)" = e2b-ci ] || continue
		pid=${d#/proc/}
		how="first process named e2b-ci; no ss to ask who has :$port"
		break
	done
fi
if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then
	echo "no e2b-ci process found"
	fail process
else
	# "pid ppid" of every process, from /proc/PID/stat (the command name
	# in parentheses may hold spaces: cut after the last ") "), then the
	# daemon's subtree, breadth first, as "pid:depth".
	tree=$(for d in /proc/[0-9]*; do
		s=$(cat "$d/stat" 2>/dev/null) || continue
		s=${s##*) }
		# shellcheck disable=SC2086
		set -- $s
		echo "${d#/proc/} $2"
	done | awk -v root="$pid" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			n = 1; q[1] = root; depth[root] = 0
			for (i = 1; i <= n; i++) {
				print q[i] ":" depth[q[i]]
				m = split(kids[q[i]], k, " ")
				for (j = 1; j <= m; j++) {
					q[++n] = k[j]; depth[k[j]] = depth[q[i]] + 1
				}
			}
		}')
	echo "daemon pid $pid ($how)"
	printf '%7s %8s %6s  %s\n' PID RSS_MiB OOMADJ COMMAND
	total=0 count=0
	for e in $tree; do
		p=${e%:*} depth=${e#*:}
		[ -d "/proc/$p" ] || continue
		rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$p/status" 2>/dev/null)
		adj=$(cat "/proc/$p/oom_score_adj" 2>/dev/null)
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")
		printf '%7s %8s %6s  %*s%s\n' "$p" \
			"$(awk -v k="${rss:-0}" 'BEGIN { printf "%.1f", k / 1024 }')" \
			"${adj:-?}" $((depth * 2)) '' "${cmd:-?}" | clip
		total=$((total + ${rss:-0})) count=$((count + 1))
	done
	echo "total RSS $(awk -v k="$total" 'BEGIN { printf "%.1f", k / 1024 }') MiB" \
		"in $count process(es)"
fi

if [ -z "$failed" ]; then
	section "verdict: OK"
	exit 0
fi
section "verdict: FAILED:$failed"
exit 1
