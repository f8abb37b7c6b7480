#!/usr/bin/env python3
"""Opens N connections at once, sends one synchronous generate-video
request on each, and waits for every answer. Prints how many were in
flight together (sent before the first answer came back), how many
succeeded (200 with a video URL) and the slowest answer.

Usage: hold_client.py PORT KEY N BODY_JSON
"""
import asyncio
import json
import sys
import time


async def one(port, request, state):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        state["errors"][str(e)] = state["errors"].get(str(e), 0) + 1
        return
    try:
        writer.write(request)
        await writer.drain()
        state["sent"] += 1
        state["max_in_flight"] = max(state["max_in_flight"],
                                     state["sent"] - state["answered"])
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        state["answered"] += 1
        state["slowest"] = max(state["slowest"],
                               time.monotonic() - state["start"])
        ok = status == 200 and json.loads(body)["data"]["videos"][0]["url"]
        if ok:
            state["ok"] += 1
        else:
            key = "status %d" % status
            state["errors"][key] = state["errors"].get(key, 0) + 1
    except Exception as e:  # a reset or timeout is a failed request
        key = type(e).__name__
        state["errors"][key] = state["errors"].get(key, 0) + 1
    finally:
        writer.close()


async def main():
    port, key, n, body = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                          sys.argv[4].encode())
    request = (b"POST /v1/ula/generate-video HTTP/1.1\r\n"
               b"Host: 127.0.0.1\r\nAuthorization: Bearer " + key.encode() +
               b"\r\nContent-Type: application/json\r\nContent-Length: " +
               str(len(body)).encode() + b"\r\n\r\n" + body)
    state = {"sent": 0, "answered": 0, "ok": 0, "max_in_flight": 0,
             "slowest": 0.0, "errors": {}, "start": time.monotonic()}
    await asyncio.gather(*(one(port, request, state) for _ in range(n)))
    print("requests                 %d" % n)
    print("in flight at once        %d" % state["max_in_flight"])
    print("succeeded                %d (%.2f%%)" %
          (state["ok"], 100.0 * state["ok"] / n))
    print("slowest answer           %.1f s" % state["slowest"])
    for k, v in sorted(state["errors"].items()):
        print("failed: %-16s %d" % (k, v))


asyncio.run(main())
