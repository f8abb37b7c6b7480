#!/usr/bin/env bash
# 10,000 synchronous generate-video requests held open at once while a slow
# provider works: the share that succeed and the server's peak memory.
#
# The provider is "replay" with a delay (default 10 s): a slow upstream
# that holds no thread while it works, like the real ones of issue 5.
# Each request is one connection suspended in the server until its job
# ends; the client (hold_client.py) sends all of them before the first
# answer can arrive.
#
# Usage: bench/sync_hold.sh [BUILD_DIR] [REQUESTS] [DELAY_MS]
# Needs: ffmpeg (scripts/deps.sh bench).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
n=${2:-10000}
delay=${3:-10000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
. bench/lib/replay.sh
replay_start "$build" "$delay" $((n + 1000)) \
  ", \"max_connections\": $((n + 1000)), \"max_connections_per_ip\": 0, \"header_timeout_s\": 120, \"connection_timeout_s\": 120"
idle=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)

python3 bench/hold_client.py "$port" "$key" "$n" "$replay_body"
peak=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
printf '%-24s %.1f MiB\n' "server RSS idle" "$(echo "$idle / 1024" | bc -l)"
printf '%-24s %.1f MiB (target < 256 MiB)\n' "server RSS peak" \
  "$(echo "$peak / 1024" | bc -l)"
"$build/vidgate" --data "$work/data" ledger check
