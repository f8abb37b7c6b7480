# replay.sh - sourced by the job benchmarks: a scratch directory, a short
# MP4 to replay, and a vidgate server whose only model ("bench-replay")
# is served by the "replay" provider, so the benchmarks measure the job
# machinery rather than rendering.
#
#   replay_start BUILD_DIR DELAY_MS CONCURRENCY LIMITS_JSON [EXTRA_JSON]
#
# Sets $work (removed at exit, with the server), $port, $pid and $key.
# LIMITS_JSON is merged into "limits"; EXTRA_JSON (e.g. '"http_threads":
# 16,') is pasted at the top level.

replay_start() {
  local build=$1 delay=$2 concurrency=$3 limits=$4 extra=${5:-}
  local vidgate=$build/vidgate
  [ -x "$vidgate" ] || { echo "build vidgate first ($vidgate)" >&2; exit 1; }
  command -v ffmpeg >/dev/null ||
    { echo "needs ffmpeg: scripts/deps.sh bench" >&2; exit 1; }
  work=$(mktemp -d)
  trap 'kill -9 $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ffmpeg -loglevel error -f lavfi -i testsrc=size=320x240:rate=24 -t 1 \
    -pix_fmt yuv420p "$work/clip.mp4"
  cat >"$work/config.json" <<CONF
{"starting_credits": 1000000000, "shutdown_grace_s": 0, $extra
 "limits": {"requests_per_minute": 0, "unfinished_jobs_per_key": 0 $limits},
 "providers": {"replay": {"file": "$work/clip.mp4", "delay_ms": $delay,
                          "concurrency": $concurrency}},
 "models": [{"name": "bench-replay", "description": "replayed clip",
             "provider": "replay", "modalities": ["t2v"],
             "resolutions": ["480P"], "aspect_ratios": ["16:9"],
             "durations": {"min": 4, "max": 12}, "fps": [24],
             "audio": false, "price": {"per_second": {"480P": 1},
             "audio_factor": 1, "flex_factor": 0.5}}]}
CONF
  "$vidgate" --config "$work/config.json" serve --data "$work/data" \
    --listen 127.0.0.1:"$port" >"$work/vidgate.out" 2>"$work/vidgate.err" &
  pid=$!
  disown # no "Killed" notice when the exit trap ends it
  echo $pid >"$work/vidgate.pid"
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
  done
  key=$(grep '^vg_' "$work/vidgate.out")
}

replay_body='{"model":"bench-replay","prompt":"a lighthouse at dusk","resolution":"480P","aspect_ratio":"16:9","duration":4,"generate_audio":false,"camera_fixed":false,"service_tier":"default"}'
