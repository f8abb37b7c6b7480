#!/usr/bin/env bash
# Async submits per second on the PostgreSQL store beside SQLite, in the
# same run: each round submits for SECONDS with wrk on one vidgate on
# SQLite, then one on a fresh PostgreSQL database (a server this script
# starts on loopback with fsync on, as SQLite's synchronous=FULL), and
# prints submits/s, latency and the CPU seconds per 1,000 submits of
# vidgate and of PostgreSQL (every process of its cluster), then the
# ratio of the medians.
#
# Usage: bench/pg_submit.sh [BUILD_DIR] [SECONDS] [CONNECTIONS] [ROUNDS]
# Needs: wrk, ffmpeg and postgresql (scripts/deps.sh bench).
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
secs=${2:-10}
conns=${3:-64}
rounds=${4:-3}
command -v wrk >/dev/null || { echo "needs wrk: scripts/deps.sh bench" >&2; exit 1; }
pgdir=$(mktemp -d)
trap 'tests/support/postgres.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
url=$(PG_FSYNC=on tests/support/postgres.sh start "$pgdir")
tick=$(getconf CLK_TCK)

# CPU seconds used so far by pid, and by the cluster's processes.
cpu_of() { awk -v t="$tick" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
pg_cpu() {
  local master total=0 p
  master=$(head -1 "$pgdir/data/postmaster.pid")
  for p in $master $(pgrep -P "$master"); do
    total=$(awk -v a="$total" -v t="$tick" '{print a + ($14 + $15) / t}' "/proc/$p/stat" 2>/dev/null || echo "$total")
  done
  echo "$total"
}

# One round on the store the environment chooses; prints
# "rps p50 p99 vidgate_cpu_per_1000 pg_cpu_per_1000".
round() (
  . bench/lib/replay.sh
  replay_start "$build" 3600000 1 ""
  cat >"$work/submit.lua" <<LUA
wrk.method = "POST"
wrk.body = '$replay_body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Prefer"] = "respond-async"
LUA
  local v0 p0 out rps v1 p1 n
  v0=$(cpu_of "$pid"); p0=$(pg_cpu)
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$work/submit.lua" \
    "http://127.0.0.1:$port/v1/ula/generate-video")
  v1=$(cpu_of "$pid"); p1=$(pg_cpu)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%s %s %s %s %s\n' "$rps" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
    "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    "$(awk -v a="$v0" -v b="$v1" -v n="$n" 'BEGIN {printf "%.3f", (b - a) * 1000 / n}')" \
    "$(awk -v a="$p0" -v b="$p1" -v n="$n" 'BEGIN {printf "%.3f", (b - a) * 1000 / n}')"
)

printf '%-9s %5s %10s %8s %8s %14s %14s\n' store round "submits/s" p50 p99 \
  "vidgate cpu-s" "postgres cpu-s"
sq=() pg=()
for r in $(seq "$rounds"); do
  line=$(VIDGATE_DATABASE_URL= round)
  read -r rps p50 p99 vcpu pcpu <<<"$line"
  printf '%-9s %5s %10s %8s %8s %14s %14s\n' sqlite "$r" "$rps" "$p50" "$p99" "$vcpu" "$pcpu"
  sq+=("$rps")
  db=bench_$r
  psql -q "${url}postgres" -c "CREATE DATABASE $db"
  line=$(VIDGATE_DATABASE_URL="$url$db" round)
  read -r rps p50 p99 vcpu pcpu <<<"$line"
  printf '%-9s %5s %10s %8s %8s %14s %14s\n' postgres "$r" "$rps" "$p50" "$p99" "$vcpu" "$pcpu"
  pg+=("$rps")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ms=$(median "${sq[@]}"); mp=$(median "${pg[@]}")
echo "cpu-s: CPU seconds per 1,000 submits"
printf 'median submits/s: sqlite %s, postgres %s, ratio %s (target >= 0.7)\n' \
  "$ms" "$mp" "$(awk -v a="$mp" -v b="$ms" 'BEGIN {printf "%.2f", a / b}')"
