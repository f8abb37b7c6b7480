#!/usr/bin/env bash
# render_vs_ffmpeg.sh - times the local renderer against the ffmpeg CLI
# making a comparable clip (same size, rate, length, x264 and AAC settings,
# +faststart), so a slowdown in vidgate's drawing or muxing shows up as a
# ratio rather than a feeling.
#
# Usage: bench/render_vs_ffmpeg.sh [BUILD_DIR]   (default ./build)
# Needs BUILD_DIR/render_clip (the render_clip target) and ffmpeg on PATH.
# Builds nothing. Environment: RUNS (default 3), WIDTH, HEIGHT, FPS,
# DURATION (default 1280x720, 24 fps, 5 s).
set -euo pipefail

build=${1:-./build}
clip=$build/render_clip
runs=${RUNS:-3}
width=${WIDTH:-1280}
height=${HEIGHT:-720}
fps=${FPS:-24}
duration=${DURATION:-5}

if [[ ! -x $clip ]]; then
    echo "no $clip: build the render_clip target first" >&2
    exit 1
fi
if ! command -v ffmpeg >/dev/null; then
    echo "ffmpeg is not on PATH" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Runs a command once; appends "seconds peak_rss_kb" to the file $1.
# GNU time gives peak RSS; without it, bash's clock and no RSS.
measure() {
    local log=$1
    shift
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%e %M' -o "$tmp/time" "$@"
        cat "$tmp/time" >>"$log"
    else
        local start end
        start=$(date +%s.%N)
        "$@"
        end=$(date +%s.%N)
        echo "$(echo "$end - $start" | bc) 0" >>"$log"
    fi
}

median() { # column of the log file
    awk -v c="$2" '{print $c}' "$1" | sort -g |
        awk '{v[NR] = $1} END {
            if (NR % 2) print v[(NR + 1) / 2];
            else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

x264=(-c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p -profile:v high)
aac=(-c:a aac -ar 48000 -ac 2 -b:a 128k)
sine="sine=frequency=220:sample_rate=48000:duration=$duration"

# Fills the array `cmd` with the command that makes clip $1.
command_for() {
    if [[ $1 == vidgate ]]; then
        cmd=("$clip" "$width" "$height" "$fps" "$duration" 1
            "$tmp/vidgate.mp4")
    else
        cmd=(ffmpeg -nostdin -v error -y
            -f lavfi -i "$1=s=${width}x${height}:r=$fps:d=$duration"
            -f lavfi -i "$sine" "${x264[@]}" "${aac[@]}"
            -movflags +faststart -shortest "$tmp/$1.mp4")
    fi
}

echo "clip: ${width}x${height}, $fps fps, $duration s, AAC audio;" \
    "$runs runs each; nproc $(nproc)"
for name in vidgate gradients testsrc2; do
    : >"$tmp/$name.log"
    for ((i = 1; i <= runs; i++)); do
        command_for "$name"
        measure "$tmp/$name.log" "${cmd[@]}"
        read -r secs rss < <(tail -n 1 "$tmp/$name.log")
        printf '%-10s run %d: %6.2f s  peak RSS %6d MiB\n' "$name" "$i" \
            "$secs" $((rss / 1024))
    done
    size=$(stat -c %s "$tmp/$name.mp4")
    printf '%-10s median %6.2f s  peak RSS %6d MiB  file %d KiB\n' "$name" \
        "$(median "$tmp/$name.log" 1)" \
        $(($(median "$tmp/$name.log" 2 | cut -d. -f1) / 1024)) \
        $((size / 1024))
done

v=$(median "$tmp/vidgate.log" 1)
for name in gradients testsrc2; do
    f=$(median "$tmp/$name.log" 1)
    awk -v v="$v" -v f="$f" -v n="$name" 'BEGIN {
        printf "ratio vidgate / ffmpeg(%s): %.2f\n", n, v / f }'
done
