#!/usr/bin/env bash
# Thousands of jobs in flight at an upstream provider at once: vidgate's
# memory and CPU while it polls them, and that every job is submitted
# exactly once and ends stored and settled.
#
# The provider is the fake Novita of the tests in "generic" mode
# (tests/fakes/fake_provider.py): every job stays queued/running for
# JOB_MS, then succeeds with a small MP4. vidgate polls each job every
# POLL_MS (backing off to 2x), all on its one upstream thread.
#
# Usage: bench/upstream_inflight.sh [BUILD_DIR] [JOBS] [JOB_MS] [POLL_MS]
# Needs: ffmpeg, sqlite3 (scripts/deps.sh bench).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
n=${2:-5000}
job_ms=${3:-60000}
poll_ms=${4:-5000}
vidgate=$build/vidgate
[ -x "$vidgate" ] || { echo "build vidgate first ($vidgate)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
trap 'kill -9 $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
fport=$(free_port)
ffmpeg -loglevel error -f lavfi -i testsrc=size=320x240:rate=24 -t 1 \
  -pix_fmt yuv420p "$work/clip.mp4"
python3 tests/fakes/fake_provider.py --port "$fport" --generic novita \
  --job-ms "$job_ms" --video "$work/clip.mp4" >"$work/fake.out" 2>&1 &
echo $! >"$work/fake.pid"
disown
cat >"$work/config.json" <<CONF
{"starting_credits": 1000000000, "shutdown_grace_s": 0,
 "limits": {"requests_per_minute": 0, "unfinished_jobs_per_key": 0},
 "providers": {"novita": {"base_url": "http://127.0.0.1:$fport",
                          "api_key_env": "BENCH_NOVITA_KEY",
                          "poll_interval_ms": $poll_ms,
                          "poll_max_interval_ms": $((poll_ms * 2)),
                          "concurrency": $((n + 100)),
                          "allow_private_addresses": true}},
 "models": [{"name": "bench-upstream", "description": "fake Novita",
             "providers": [{"provider": "novita",
                            "model": "seedance-v1.5-pro-t2v"}],
             "modalities": ["t2v"], "resolutions": ["480P"],
             "aspect_ratios": ["16:9"], "durations": {"min": 4, "max": 12},
             "fps": [24], "audio": true,
             "price": {"per_second": {"480P": 1}}}]}
CONF
BENCH_NOVITA_KEY=bench "$vidgate" --config "$work/config.json" serve \
  --data "$work/data" --listen 127.0.0.1:"$port" \
  >"$work/vidgate.out" 2>"$work/vidgate.err" &
pid=$!
disown
echo $pid >"$work/vidgate.pid"
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
key=$(grep '^vg_' "$work/vidgate.out")
idle=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
cpu_ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }
hz=$(getconf CLK_TCK)
count() {
  sqlite3 "$work/data/vidgate.db" \
    "SELECT count(*) FROM jobs WHERE state = '$1'" 2>/dev/null || echo 0
}
body='{"model":"bench-upstream","prompt":"a lighthouse at dusk","resolution":"480P","aspect_ratio":"16:9","duration":5,"generate_audio":true,"camera_fixed":false,"service_tier":"default","seed":7}'

t0=$(date +%s.%N)
python3 bench/submit_client.py "$port" "$key" "$n" "$body"
t1=$(date +%s.%N)
# Wait until every job runs at the provider, then measure the polling.
for _ in $(seq 600); do
  [ "$(count running)" -ge "$n" ] && break
  [ "$(count succeeded)" -gt 0 ] && break
  sleep 0.2
done
inflight=$(count running)
rss_inflight=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
c0=$(cpu_ticks); s0=$(date +%s.%N)
sleep 20
c1=$(cpu_ticks); s1=$(date +%s.%N)
for _ in $(seq 3000); do
  done_=$(( $(count succeeded) + $(count failed) ))
  [ "$done_" -ge "$n" ] && break
  sleep 0.2
done
t2=$(date +%s.%N)
peak=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
stats=$(curl -s "http://127.0.0.1:$fport/_fake/report" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(d.get("generic", d.get("stats", {}))))')
mib() { echo "scale=1; $1 / 1024" | bc -l; }
printf '%-34s %s\n' "jobs" "$n (each ${job_ms} ms at the provider, polled every ${poll_ms}-$((poll_ms * 2)) ms)"
printf '%-34s %.1f s\n' "submitting them" "$(echo "$t1 - $t0" | bc -l)"
printf '%-34s %s\n' "in flight at once" "$inflight"
printf '%-34s %s MiB\n' "server RSS idle" "$(mib "$idle")"
printf '%-34s %s MiB\n' "server RSS, jobs in flight" "$(mib "$rss_inflight")"
printf '%-34s %s MiB\n' "server RSS peak" "$(mib "$peak")"
printf '%-34s %.1f %% of one core\n' "server CPU while polling" \
  "$(echo "100 * ($c1 - $c0) / $hz / ($s1 - $s0)" | bc -l)"
printf '%-34s %.1f s\n' "first submit to last stored" "$(echo "$t2 - $t0" | bc -l)"
printf '%-34s %s succeeded, %s failed\n' "outcome" "$(count succeeded)" "$(count failed)"
printf '%-34s %s\n' "fake provider counters" "$stats"
"$vidgate" --data "$work/data" ledger check
