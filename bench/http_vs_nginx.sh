#!/usr/bin/env bash
# Throughput of GET /v1/ula/models and of a POST rejected with 422, next to
# nginx serving a static file of the same size, measured with wrk in the
# same run. Prints requests/s for each and vidgate's ratio to nginx.
#
# Usage: bench/http_vs_nginx.sh [BUILD_DIR] [SECONDS] [CONNECTIONS]
# Needs: wrk and nginx (scripts/deps.sh bench).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
secs=${2:-10}
conns=${3:-64}
vidgate=$build/vidgate
[ -x "$vidgate" ] || { echo "build vidgate first ($vidgate)" >&2; exit 1; }
command -v wrk >/dev/null && command -v nginx >/dev/null ||
  { echo "needs wrk and nginx: scripts/deps.sh bench" >&2; exit 1; }

work=$(mktemp -d)
trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null; sleep 0.3; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
vport=$(port); nport=$(port)

# No per-key rate limit: the benchmark is one key sending as fast as it can.
echo '{"limits": {"requests_per_minute": 0}}' >"$work/config.json"
"$vidgate" --config "$work/config.json" serve --data "$work/data" \
  --listen 127.0.0.1:"$vport" \
  >"$work/vidgate.out" 2>/dev/null &
echo $! >"$work/vidgate.pid"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$vport/healthz" >/dev/null && break; sleep 0.1; done
key=$(grep '^vg_' "$work/vidgate.out")

# The same bytes, served by nginx as static files.
mkdir -p "$work/www" "$work/nginx/logs"
curl -sf -H "Authorization: Bearer $key" \
  "http://127.0.0.1:$vport/v1/ula/models" >"$work/www/models.json"
invalid='{"model":"vidgate-local","prompt":"x","resolution":"720P","aspect_ratio":"16:9","duration":99,"generate_audio":false,"camera_fixed":false,"service_tier":"default"}'
curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "$invalid" "http://127.0.0.1:$vport/v1/ula/generate-video" \
  >"$work/www/invalid.json"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log /dev/null;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  server {
    listen 127.0.0.1:$nport;
    root $work/www;
    location / { }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
sleep 0.3

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$invalid'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA

rps() { # url [extra wrk args]
  local url=$1; shift
  wrk -t2 -c"$conns" -d"${secs}s" "$@" "$url" | awk '/Requests\/sec/ {print $2}'
}

printf '%-28s %12s %12s %8s %s\n' "case" "vidgate r/s" "nginx r/s" "ratio" "bytes"
row() { # name vidgate_rps nginx_rps bytes
  printf '%-28s %12.0f %12.0f %8.2f %s\n' "$1" "$2" "$3" \
    "$(python3 -c "print($2/$3)")" "$4"
}
v=$(rps "http://127.0.0.1:$vport/v1/ula/models" -H "Authorization: Bearer $key")
n=$(rps "http://127.0.0.1:$nport/models.json")
row "GET /v1/ula/models" "$v" "$n" "$(wc -c <"$work/www/models.json")"
v=$(rps "http://127.0.0.1:$vport/v1/ula/generate-video" -s "$work/post.lua")
n=$(rps "http://127.0.0.1:$nport/invalid.json")
row "POST generate-video (422)" "$v" "$n" "$(wc -c <"$work/www/invalid.json")"
