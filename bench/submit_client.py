"""submit_client.py - submits N asynchronous jobs (Prefer: respond-async)
as fast as a few threads can, for bench/upstream_inflight.sh.

Usage: submit_client.py PORT KEY N BODY_JSON
Prints the number of 202 answers and any other statuses seen.
"""
import collections
import http.client
import sys
import threading


def main():
    port, key, n, body = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                          sys.argv[4].encode())
    headers = {"Authorization": "Bearer " + key,
               "Content-Type": "application/json",
               "Prefer": "respond-async"}
    statuses = collections.Counter()
    lock = threading.Lock()
    left = [n]

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            conn.request("POST", "/v1/ula/generate-video", body, headers)
            r = conn.getresponse()
            r.read()
            with lock:
                statuses[r.status] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("submitted %d (%s)" % (statuses[202], ", ".join(
        "%d x %d" % (c, s) for s, c in sorted(statuses.items()))))
    return 0 if statuses[202] == n else 1


if __name__ == "__main__":
    sys.exit(main())
