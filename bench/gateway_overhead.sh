#!/usr/bin/env bash
# What the gateway costs in front of an upstream: job submits through
# vidgate (POST /v1/ula/generate-video, Prefer: respond-async, to an
# OpenAI-compatible provider) beside nginx proxy_pass of the upstream's
# create, both in front of the same fake upstream that answers at once,
# in one run. The fake is nginx itself (a fixed create answer, a completed
# status and a small MP4), so it is never the bottleneck.
#
# Prints, per case (one connection, then CONNECTIONS): requests/s, p50 and
# p99 latency (wrk --latency), the upstream creates/s the fake saw while
# wrk ran, and the CPU seconds per request of the process in front
# (vidgate, or the nginx proxy's workers) and of the fake. Then, once
# every job has ended: the accepted jobs, the creates after the burst,
# the jobs by state and those left without an upstream task (must be 0),
# the accept -> dispatch lag percentiles, vidgate's CPU per job by
# thread at CONNECTIONS (end to end), its peak RSS, CPU per request at 1
# and at CONNECTIONS beside the proxy's, vidgate's CPU per job end to
# end (from wrk's start until the last of its jobs ended: the submit and
# all the work after it, at 1 and at CONNECTIONS), and the ratios.
#
# Usage: bench/gateway_overhead.sh [BUILD_DIR] [SECONDS] [CONNECTIONS]
#   BENCH_CONCURRENCY (2000): the provider's concurrency; past it, jobs
#   wait in the database.
#   BENCH_DISPATCH_BACKLOG (the server's default): jobs.dispatch_backlog,
#   how many startable jobs may wait for a worker before submits are held.
# Needs: wrk and nginx (scripts/deps.sh bench).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
secs=${2:-10}
conns=${3:-64}
# The provider's concurrency: jobs past it wait in vidgate's database.
concurrency=${BENCH_CONCURRENCY:-2000}
jobs_section=
[ -n "${BENCH_DISPATCH_BACKLOG:-}" ] &&
  jobs_section="\"jobs\": {\"dispatch_backlog\": $BENCH_DISPATCH_BACKLOG},"
vidgate=$build/vidgate
[ -x "$vidgate" ] || { echo "build vidgate first ($vidgate)" >&2; exit 1; }
command -v wrk >/dev/null && command -v nginx >/dev/null ||
  { echo "needs wrk and nginx: scripts/deps.sh bench" >&2; exit 1; }

work=$(mktemp -d)
cleanup() {
  for f in "$work"/*.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  sleep 0.3
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fport=$(port); pport=$(port); vport=$(port)

# ---- the fake upstream and the proxy (two nginx instances) -------------
mkdir -p "$work/www" "$work/fake/logs" "$work/proxy/logs"
# nginx's workers run as another user when started as root: they must be
# able to read the MP4.
chmod 755 "$work" "$work/www"
ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=320x240:rate=24 -t 1 \
  -c:v libx264 -pix_fmt yuv420p "$work/www/v.mp4"
chmod 644 "$work/www/v.mp4"
video='{"id":"video_bench","object":"video","model":"sora-2","status":"queued","progress":0,"created_at":1,"seconds":"4","size":"1280x720","error":null}'
done_video='{"id":"video_bench","object":"video","model":"sora-2","status":"completed","progress":100,"created_at":1,"seconds":"4","size":"1280x720","error":null}'
cat >"$work/fake/nginx.conf" <<CONF
worker_processes 1;
pid $work/fake.pid;
error_log /dev/null;
events { worker_connections 8192; }
http {
  log_format m '\$request_method \$uri';
  access_log $work/fake/access.log m;
  default_type application/json;
  server {
    listen 127.0.0.1:$fport;
    location = /v1/videos { return 200 '$video'; }
    location ~ ^/v1/videos/[^/]+/content\$ {
      root $work/www; default_type video/mp4; rewrite ^ /v.mp4 break;
    }
    location /v1/videos/ { return 200 '$done_video'; }
  }
}
CONF
cat >"$work/proxy/nginx.conf" <<CONF
worker_processes 1;
pid $work/proxy.pid;
error_log /dev/null;
events { worker_connections 8192; }
http {
  access_log off;
  upstream fake { server 127.0.0.1:$fport; keepalive 64; }
  server {
    listen 127.0.0.1:$pport;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
nginx -p "$work/fake" -c "$work/fake/nginx.conf"
nginx -p "$work/proxy" -c "$work/proxy/nginx.conf"

# ---- vidgate, with the fake as an OpenAI-compatible provider -------------
cat >"$work/config.json" <<CONF
{"starting_credits": 1000000000, "shutdown_grace_s": 0, $jobs_section
 "limits": {"requests_per_minute": 0, "unfinished_jobs_per_key": 0},
 "providers": {"bench-up": {"type": "openai",
                            "base_url": "http://127.0.0.1:$fport",
                            "api_key_env": "BENCH_UPSTREAM_KEY",
                            "poll_interval_ms": 200,
                            "poll_max_interval_ms": 400,
                            "concurrency": $concurrency,
                            "allow_private_addresses": true}},
 "models": [{"name": "bench-up", "description": "fake upstream",
             "providers": [{"provider": "bench-up", "model": "sora-2"}],
             "modalities": ["t2v"], "resolutions": ["720P"],
             "aspect_ratios": ["16:9"], "durations": [4], "fps": [24],
             "audio": false, "price": {"per_second": {"720P": 0.001}}}]}
CONF
BENCH_UPSTREAM_KEY=bench "$vidgate" --config "$work/config.json" serve \
  --data "$work/data" --listen 127.0.0.1:"$vport" \
  >"$work/vidgate.out" 2>"$work/vidgate.err" &
echo $! >"$work/vidgate.pid"
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$vport/healthz" >/dev/null && break
  sleep 0.1
done
key=$(grep '^vg_' "$work/vidgate.out")

body='{"model":"bench-up","prompt":"a red fox running through snow","resolution":"720P","aspect_ratio":"16:9","duration":4,"generate_audio":false,"camera_fixed":false,"service_tier":"default"}'
cat >"$work/vidgate.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Prefer"] = "respond-async"
LUA
# What the official openai client sends: a multipart create.
boundary=vgbenchboundary
form=$(printf -- '--%s\r\nContent-Disposition: form-data; name="model"\r\n\r\nsora-2\r\n--%s\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na red fox running through snow\r\n--%s\r\nContent-Disposition: form-data; name="seconds"\r\n\r\n4\r\n--%s\r\nContent-Disposition: form-data; name="size"\r\n\r\n1280x720\r\n--%s--\r\n' \
  $boundary $boundary $boundary $boundary $boundary | python3 -c 'import sys; print(repr(sys.stdin.read()))')
cat >"$work/proxy.lua" <<LUA
wrk.method = "POST"
wrk.body = $form
wrk.headers["Content-Type"] = "multipart/form-data; boundary=$boundary"
wrk.headers["Authorization"] = "Bearer bench"
LUA

# CPU seconds (user + system) of processes so far.
cpu() { # pid...
  local t=0 p
  for p in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  python3 -c "print($t / $(getconf CLK_TCK))"
}
workers() { pgrep -P "$(cat "$1")" | tr '\n' ' '; }
creates() { grep -c '^POST /v1/videos$' "$work/fake/access.log" || true; }

# wrk's requests/s, p50 and p99 (ms) from its --latency report.
measure() { # url luascript front-pids...
  local url=$1 lua=$2; shift 2
  local fake_pids; fake_pids=$(workers "$work/fake.pid")
  local c0 f0 n0 out c1 f1 n1
  c0=$(cpu "$@"); f0=$(cpu $fake_pids); n0=$(creates)
  out=$(wrk -t"$(( conns < 2 ? 1 : 2 ))" -c"$conns" -d"${secs}s" --latency -s "$lua" "$url")
  c1=$(cpu "$@"); f1=$(cpu $fake_pids); n1=$(creates)
  python3 - "$out" "$c0" "$c1" "$f0" "$f1" "$n0" "$n1" "$secs" <<'PY'
import re, sys
out, c0, c1, f0, f1, n0, n1, secs = sys.argv[1:]
def ms(label):
    m = re.search(r"^\s+%s\s+([\d.]+)(us|ms|s)\s*$" % label, out, re.M)
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]
total = int(re.search(r"(\d+) requests in", out).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
print("%.1f %.3f %.3f %.1f %.1f %.1f %d" % (
    rps, ms("50%"), ms("99%"),
    (int(n1) - int(n0)) / float(secs),
    (float(c1) - float(c0)) * 1e6 / total,
    (float(f1) - float(f0)) * 1e6 / total,
    int(non2xx.group(1)) if non2xx else 0))
PY
}

vpid=$(cat "$work/vidgate.pid")
db=$work/data/vidgate.db
q() { sqlite3 -cmd '.timeout 5000' "$db" "$1"; }
# Waits until no job is queued or running (at most 10 minutes).
drain() {
  for _ in $(seq 1200); do
    [ "$(q "select count(*) from jobs where state in ('queued', 'running')")" = 0 ] && break
    sleep 0.5
  done
}
# vidgate's CPU and its job count now, then what it spent per job since
# such a mark: submit, dispatch, polls, the video's copy and the ending,
# end to end.
mark() { echo "$(cpu "$vpid") $(q "select count(*) from jobs")"; }
# vidgate's CPU ticks by thread name (the threads are named: MHD-worker,
# vg-worker, vg-upstream, vg-store, ...), one "name ticks" line each.
threads() {
  for t in /proc/"$vpid"/task/*; do
    echo "$(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
  done 2>/dev/null | awk '{n[$1] += $2} END {for (k in n) print k, n[k]}'
}
end_to_end() { # mark
  python3 -c 'import sys; c0, n0, c1, n1 = map(float, sys.argv[1:]); print("%.0f" % ((c1 - c0) * 1e6 / max(n1 - n0, 1)))' \
    $1 $(mark)
}
printf '%-34s %9s %8s %8s %10s %11s %10s %6s\n' case req/s p50_ms p99_ms \
  creates/s front_us/req fake_us/req errors
row() { printf '%-34s %9s %8s %8s %10s %11s %10s %6s\n' "$1" $2; }
direct=$(measure "http://127.0.0.1:$fport/v1/videos" "$work/proxy.lua")
row "fake upstream alone (create)" "$direct"
# One connection first: what a request costs when nothing queues.
conns_burst=$conns; secs_burst=$secs
conns=1; secs=$(( secs_burst < 5 ? secs_burst : 5 ))
proxy1=$(measure "http://127.0.0.1:$pport/v1/videos" "$work/proxy.lua" \
  $(workers "$work/proxy.pid"))
row "nginx proxy_pass, 1 connection" "$proxy1"
gate1_from=$(mark)
gate1=$(measure "http://127.0.0.1:$vport/v1/ula/generate-video" \
  "$work/vidgate.lua" "$vpid")
row "vidgate async submit, 1 conn" "$gate1"
drain
gate1_end=$(end_to_end "$gate1_from")
conns=$conns_burst; secs=$secs_burst
proxy=$(measure "http://127.0.0.1:$pport/v1/videos" "$work/proxy.lua" \
  $(workers "$work/proxy.pid"))
row "nginx proxy_pass, $conns conns" "$proxy"
gate_from=$(mark)
threads >"$work/threads.before"
gate=$(measure "http://127.0.0.1:$vport/v1/ula/generate-video" \
  "$work/vidgate.lua" "$vpid")
row "vidgate async submit, $conns conns" "$gate"

# The jobs run on: every one is created upstream, polled and stored.
t0=$(date +%s.%N); n0=$(creates)
drain
t1=$(date +%s.%N); n1=$(creates)
gate_end=$(end_to_end "$gate_from")
threads >"$work/threads.after"
python3 - "$t0" "$t1" "$n0" "$n1" <<'PY'
import sys
t0, t1, n0, n1 = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
busy = max(t1 - t0, 0.001)
print("after the burst: %d more upstream creates in %.1f s (%.0f creates/s "
      "while the backlog drained)" % (n1 - n0, busy, (n1 - n0) / busy))
PY
echo "accepted jobs: $(q "select count(*) from jobs");" \
  "upstream creates seen by the fake: $(creates)"
echo "jobs by state after the drain: $(q "select group_concat(state || '=' || n, ' ') from (select state, count(*) n from jobs group by state)")"
echo "jobs left without an upstream task: $(q "select count(*) from jobs where state in ('queued', 'running')")"
q "select error_code, error_message, count(*) from jobs where state = 'failed' group by 1, 2 limit 5" >&2
# Accept -> dispatch: from the job's creation to the commit of its start,
# right before its create is sent.
q "select started_ms - created_ms from jobs where started_ms is not null order by 1" |
python3 -c '
import sys
v = [int(x) for x in sys.stdin.read().split()]
if v:
    pick = lambda f: v[min(len(v) - 1, int(f * len(v)))]
    print("accept -> dispatch lag ms: p50 %d, p90 %d, p99 %d, max %d" %
          (pick(0.5), pick(0.9), pick(0.99), v[-1]))'
# Where the CPU of each job went, end to end at CONNECTIONS, by thread.
python3 - "$work/threads.before" "$work/threads.after" \
  "$(getconf CLK_TCK)" "$(echo "$gate_from" | cut -d' ' -f2)" \
  "$(q "select count(*) from jobs")" <<'PY'
import sys
def read(path):
    with open(path) as f:
        return {k: int(v) for k, v in (line.split() for line in f)}
before, after = read(sys.argv[1]), read(sys.argv[2])
tck, jobs = int(sys.argv[3]), max(int(sys.argv[5]) - int(sys.argv[4]), 1)
used = {k: (after[k] - before.get(k, 0)) * 1e6 / tck / jobs for k in after}
print("vidgate CPU per job by thread at many: " + ", ".join(
    "%s %.0f us" % (k, v) for k, v in
    sorted(used.items(), key=lambda kv: -kv[1]) if v >= 1))
PY
echo "vidgate peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$vpid/status")"
python3 - "$proxy" "$gate" "$proxy1" "$gate1" "$gate1_end" "$gate_end" <<'PY'
import sys
p, g, p1, g1 = ([float(x) for x in a.split()] for a in sys.argv[1:5])
e1, e = sys.argv[5:7]
print("CPU per request: vidgate %.0f us at 1 connection, %.0f us at many; "
      "nginx proxy %.0f us and %.0f us" % (g1[4], g[4], p1[4], p[4]))
print("vidgate CPU per job end to end (submit to stored video): %s us at "
      "1 connection, %s us at many" % (e1, e))
print("creates during the burst / submits: %.2f" % (g[3] / g[0]))
print("vidgate / nginx proxy: req/s %.2f, p50 %.2f, p99 %.2f, CPU per "
      "request %.2f (1 connection: %.2f)" % (
          g[0] / p[0], g[1] / p[1], g[2] / p[2],
          g[4] / p[4] if p[4] else float("nan"),
          g1[4] / p1[4] if p1[4] else float("nan")))
PY
