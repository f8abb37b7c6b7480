#!/usr/bin/env bash
# The malicious forms of issue 10 at growing sizes: urlencoded and
# multipart bodies of many tiny distinct fields, and the same field
# repeated, sent to an authenticated route with the field cap raised so
# the server must read them all. Prints the server's peak RSS and CPU per
# request for each size: both must grow linearly, and a 1 MiB body must
# cost under 64 MiB and 100 ms.
#
# Usage: bench/hostile_forms.sh [BUILD_DIR]
# Needs: ffmpeg (scripts/deps.sh bench).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
. bench/lib/replay.sh
replay_start "$build" 0 10 \
  ", \"max_form_fields\": 100000, \"max_body_bytes\": 4194304"
python3 - "$port" "$key" "$pid" <<'PY'
import http.client, os, sys
port, key, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
tick = os.sysconf("SC_CLK_TCK")

def cpu():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick

def rss_mib(field):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(field):
            return int(line.split()[1]) / 1024

def urlencoded(size):
    out, i = [], 0
    while sum(map(len, out)) + len(out) < size:
        out.append("f%d=11111111" % i)
        i += 1
    return "&".join(out).encode(), "application/x-www-form-urlencoded", i

def multipart(size):
    parts, i, n = [], 0, 0
    while n < size:
        p = ('--xyzzy\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n1\r\n'
             % i)
        parts.append(p)
        n += len(p)
        i += 1
    return ("".join(parts) + "--xyzzy--\r\n").encode(), \
        "multipart/form-data; boundary=xyzzy", i

def send(body, ctype):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/v1/ula/generate-video", body,
              {"Content-Type": ctype, "Authorization": "Bearer " + key})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status

print("server RSS idle: %.1f MiB" % rss_mib("VmRSS:"))
print("%-11s %9s %8s %9s %13s" % ("form", "body KiB", "fields", "status",
                                  "ms CPU/req") + "  peak RSS MiB")
for make in (urlencoded, multipart):
    for kib in (128, 256, 512, 1024):
        body, ctype, fields = make(kib * 1024)
        before, runs = cpu(), 5
        for _ in range(runs):
            status = send(body, ctype)
        per = (cpu() - before) / runs * 1000
        print("%-11s %9d %8d %9d %13.1f  %.1f" % (
            make.__name__, len(body) // 1024, fields, status, per,
            rss_mib("VmHWM:")))
print("targets at 1 MiB: CPU < 100 ms/request, peak RSS < 64 MiB")
PY
