#!/usr/bin/env bash
# render_matrix.sh - the local renderer against the ffmpeg command line,
# for 5 s and 12 s clips at 480P, 720P and 1080P (16:9), with and without
# audio. The ffmpeg side makes a comparable clip: a generated gradient
# background with the prompt drawn on it (drawtext) and, with audio, an AAC
# tone; same x264 preset (veryfast, CRF 23, yuv420p, high), same size and
# rate, +faststart. Prints each pair's median time and peak RSS, vidgate's
# time ratio to ffmpeg and its speed in seconds of video per second.
#
# Usage: bench/render_matrix.sh [BUILD_DIR]     (default ./build)
# Environment: RUNS (default 3), FPS (24), PROMPT.
set -euo pipefail

build=${1:-./build}
clip=$build/render_clip
runs=${RUNS:-3}
fps=${FPS:-24}
prompt=${PROMPT:-a lighthouse on a cliff at dusk, waves below}
font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf

[[ -x $clip ]] || { echo "build the render_clip target first" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "ffmpeg is not on PATH" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "needs GNU time (scripts/deps.sh bench)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Runs "$@" $runs times; prints "median_seconds max_rss_kib".
measure() {
    : >"$tmp/log"
    for ((i = 0; i < runs; i++)); do
        /usr/bin/time -f '%e %M' -o "$tmp/t" "$@" >/dev/null
        cat "$tmp/t" >>"$tmp/log"
    done
    sort -g "$tmp/log" | awk '{t[NR] = $1; if ($2 > m) m = $2}
        END {print t[int((NR + 1) / 2)], m}'
}

printf '%-6s %4s %-5s | %9s %9s | %9s %9s | %6s %8s\n' res dur audio \
    "vidgate s" "RSS MiB" "ffmpeg s" "RSS MiB" ratio "video/s"
for res in 480P 720P 1080P; do
    case $res in
    480P) w=854 h=480 ;;
    720P) w=1280 h=720 ;;
    1080P) w=1920 h=1080 ;;
    esac
    for dur in 5 12; do
        for audio in 0 1; do
            read -r vt vm < <(measure "$clip" "$w" "$h" "$fps" "$dur" \
                "$audio" "$tmp/v.mp4" 42 --prompt "$prompt")
            text=${prompt//:/\\:}
            args=(ffmpeg -nostdin -v error -y -f lavfi -i
                "gradients=s=${w}x${h}:r=$fps:d=$dur,drawtext=fontfile=$font:text='$text':fontsize=$((h / 14)):fontcolor=white:shadowx=2:shadowy=2:x=(w-tw)/2:y=(h-th)/2")
            if ((audio)); then
                args+=(-f lavfi -i "sine=frequency=220:sample_rate=48000:duration=$dur"
                    -c:a aac -ar 48000 -ac 2 -b:a 128k -shortest)
            fi
            args+=(-c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p
                -profile:v high -movflags +faststart "$tmp/f.mp4")
            read -r ft fm < <(measure "${args[@]}")
            awk -v r="$res" -v d="$dur" -v a="$audio" -v vt="$vt" \
                -v vm="$vm" -v ft="$ft" -v fm="$fm" 'BEGIN {
                printf "%-6s %4d %-5s | %9.2f %9d | %9.2f %9d | %6.2f %8.2f\n",
                    r, d, a ? "yes" : "no", vt, vm / 1024, ft, fm / 1024,
                    vt / ft, d / vt }'
        done
    done
done
