#!/usr/bin/env bash
# Installs what is missing, builds, and runs `vidgate serve` on its embedded
# defaults (SQLite and a videos folder under ./vidgate-data, 127.0.0.1:8080).
# Extra arguments go to `vidgate serve` (e.g. --listen 0.0.0.0:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target vidgate
exec ./build/vidgate serve "$@"
