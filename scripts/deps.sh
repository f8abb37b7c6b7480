#!/usr/bin/env bash
# Installs the Debian packages vidgate needs that are not installed yet.
# Usage: scripts/deps.sh [build|test|bench]   (each includes the ones before)
set -euo pipefail

build=(build-essential cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev
       libsqlite3-dev libpq-dev libjwt-dev libssl-dev libavcodec-dev libavformat-dev
       libavutil-dev libswscale-dev libswresample-dev libx264-dev
       libcairo2-dev libpango1.0-dev libfontconfig-dev libespeak-ng-dev
       libexif-dev libc-ares-dev
       fonts-dejavu-core fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji)
test=(libcmocka-dev ffmpeg python3 python3-yaml openssl postgresql)
bench=(wrk nginx-light time sqlite3 bc curl)

want=("${build[@]}")
case "${1:-build}" in
  build) ;;
  test) want+=("${test[@]}") ;;
  bench) want+=("${test[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
