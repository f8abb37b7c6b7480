#!/usr/bin/env bash
# Job submissions per second with "Prefer: respond-async" on SQLite, and
# the latency of one submit (p50, p99), measured with wrk.
#
# Every submit is a durable job with its credit reservation, committed
# (synchronous=FULL) before the 202 goes out. The jobs go to the "replay"
# provider with one slot and a long delay, so the benchmark measures
# accepting work, not doing it.
#
# Usage: bench/jobs_submit.sh [BUILD_DIR] [SECONDS] [CONNECTIONS]
# Environment: EXTRA_CONFIG, top-level config keys to add, e.g.
#   EXTRA_CONFIG='"http_threads": 32,'
# Needs: wrk and ffmpeg (scripts/deps.sh bench).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
secs=${2:-10}
conns=${3:-64}
command -v wrk >/dev/null || { echo "needs wrk: scripts/deps.sh bench" >&2; exit 1; }
. bench/lib/replay.sh
replay_start "$build" 3600000 1 "" "${EXTRA_CONFIG:-}"
body=$replay_body
cat >"$work/submit.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Prefer"] = "respond-async"
done = function(summary, latency, requests)
  io.write(string.format("non-202 answers: %d\n",
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
LUA
# A status other than 2xx counts in wrk's errors.status; 202 is 2xx.
out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$work/submit.lua" \
  "http://127.0.0.1:$port/v1/ula/generate-video")
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
bad=$(awk '/non-202 answers/ {print $3}' <<<"$out")
jobs=$(sqlite3 "$work/data/vidgate.db" 'SELECT count(*) FROM jobs' 2>/dev/null || echo "?")
printf '%-34s %s\n' "async submits/s (${conns} conns, ${secs}s)" "$rps"
printf '%-34s %s\n' "submit latency p50" "$p50"
printf '%-34s %s\n' "submit latency p99" "$p99"
printf '%-34s %s\n' "failed submits" "$bad"
printf '%-34s %s\n' "jobs in the store" "$jobs"
printf '%-34s %s\n' "target" ">= 5000/s"
