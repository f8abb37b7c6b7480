"""fake_provider.py - a scripted fake of an upstream video provider (Novita,
Google Veo, BytePlus, fal, Replicate, OpenAI-style), for vidgate's
integration tests.

Each test case is data, as in curl's tests/data: a scenario file lists the
exchanges vidgate must have with the provider, in order - the request it
must send and the response the fake gives. The fake serves them on
127.0.0.1, answers anything unexpected with 500 {"fake_error": ...}, and
keeps a report (what was served, what was not, every request received)
that the test asserts on. A "generic" mode answers any number of jobs of
one provider without a script, for load tests.

Use it from a test:

    with FakeProvider("scenarios/novita/success.json", video=mp4) as fake:
        ... point vidgate's novita base_url at fake.url, run a job ...
        fake.assert_clean()

or from a shell (serves until killed):

    python3 fake_provider.py --port 8401 scenarios/novita/success.json

README.md beside this file describes the scenario format. Standard library
only.
"""
import argparse
import base64
import binascii
import copy
import email.parser
import email.policy
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid

VIDEO_ENV = "VG_FAKE_VIDEO"
VIDEO_TOKEN = "$VIDEO"
BASE_TOKEN = "$BASE"
ANY = "*"

SCENARIO_KEYS = {"name", "exchanges", "comment", "spec", "provider"}
EXCHANGE_KEYS = {"name", "comment", "request", "response", "times", "repeat",
                 "expires_after_ms", "expired_status"}
REQUEST_KEYS = {"method", "path", "path_prefix", "query", "headers", "json",
                "form", "files", "body_absent", "comment"}
RESPONSE_KEYS = {"status", "headers", "json", "body", "file", "redirect",
                 "delay_ms", "close", "comment"}
RESPONSE_BODIES = ("json", "body", "file", "redirect")

# Headers left out of the log: transport details, not what an adapter says.
UNLOGGED_HEADERS = {"host", "content-length", "connection", "expect",
                    "transfer-encoding"}
CONTROL_PATHS = ("/_fake/report", "/_fake/load", "/_fake/reset")
BASE64_RE = re.compile(r"^(?:[A-Za-z0-9+/]{4})*"
                       r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
NOT_JSON = object()  # Received.json when the body does not parse
SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "scenarios")


def scenario_path(name):
    """The file of a shipped scenario: scenario_path("novita/success")."""
    return os.path.join(SCENARIOS, name + ".json")


# ---- scenarios -----------------------------------------------------------

def _check_keys(obj, allowed, where):
    if not isinstance(obj, dict):
        raise ValueError("%s: expected an object" % where)
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ValueError("%s: unknown key(s) %s (allowed: %s)"
                         % (where, ", ".join(unknown),
                            ", ".join(sorted(allowed))))


def check_scenario(scenario, where="scenario"):
    """Raises ValueError naming the first problem (typos in keys included:
    a misspelt matcher would silently match everything)."""
    _check_keys(scenario, SCENARIO_KEYS, where)
    exchanges = scenario.get("exchanges")
    if not isinstance(exchanges, list):
        raise ValueError("%s: \"exchanges\" must be a list" % where)
    for i, ex in enumerate(exchanges):
        at = "%s.exchanges[%d]" % (where, i)
        _check_keys(ex, EXCHANGE_KEYS, at)
        _check_keys(ex.get("request"), REQUEST_KEYS, at + ".request")
        _check_keys(ex.get("response"), RESPONSE_KEYS, at + ".response")
        times = ex.get("times", 1)
        if not isinstance(times, int) or isinstance(times, bool) or \
                times < (0 if ex.get("repeat") else 1):
            raise ValueError("%s: times must be an integer >= 1 (>= 0 with "
                             "repeat)" % at)
        req = ex["request"]
        if "path" in req and "path_prefix" in req:
            raise ValueError("%s.request: path or path_prefix, not both" % at)
        for key in ("query", "headers"):
            if key in req and not isinstance(req[key], dict):
                raise ValueError("%s.request.%s: expected an object"
                                 % (at, key))
        bodies = [k for k in RESPONSE_BODIES if k in ex["response"]]
        if len(bodies) > 1:
            raise ValueError("%s.response: only one of %s"
                             % (at, ", ".join(bodies)))


def read_scenario(source):
    """(scenario, directory) from a file path or an already-parsed dict;
    relative "file" responses are found in that directory."""
    if isinstance(source, dict):
        scenario, directory = copy.deepcopy(source), os.getcwd()
        scenario.setdefault("name", "scenario")
    else:
        path = os.path.abspath(os.fspath(source))
        with open(path) as f:
            scenario = json.load(f)
        directory = os.path.dirname(path)
        scenario.setdefault("name", os.path.splitext(
            os.path.basename(path))[0])
    check_scenario(scenario, scenario["name"])
    return scenario, directory


def exchange_name(ex):
    if "name" in ex:
        return ex["name"]
    req = ex["request"]
    path = req.get("path") or req.get("path_prefix", "") + "*"
    return "%s %s" % (req.get("method", "*"), path)


class Track:
    """One loaded scenario and how far it has been served."""

    def __init__(self, number, scenario, directory):
        self.number = number
        self.name = scenario["name"]
        self.directory = directory
        self.exchanges = scenario["exchanges"]
        self.served = [0] * len(self.exchanges)
        self.index = 0
        self.since = time.monotonic()  # when exchange `index` became current
        self._advance()

    def _satisfied(self, i):
        return self.served[i] >= self.exchanges[i].get("times", 1)

    def _advance(self):
        while (self.index < len(self.exchanges)
               and self._satisfied(self.index)
               and not self.exchanges[self.index].get("repeat")):
            self.index += 1
            self.since = time.monotonic()

    def candidates(self):
        """Indexes the next request may match, in order of preference: the
        current exchange, then (once it is satisfied, i.e. a repeating
        one) the exchange after it."""
        if self.index >= len(self.exchanges):
            return []
        out = [self.index]
        if self._satisfied(self.index) and \
                self.index + 1 < len(self.exchanges):
            out.append(self.index + 1)
        return out

    def take(self, i):
        """Serves exchange i; returns the seconds since it became current."""
        now = time.monotonic()
        if i != self.index:
            self.index, self.since = i, now
        age = now - self.since
        self.served[i] += 1
        self._advance()
        return age

    def remaining(self):
        out = []
        for i in range(self.index, len(self.exchanges)):
            if not self._satisfied(i):
                out.append({"track": self.name, "index": i,
                            "name": exchange_name(self.exchanges[i]),
                            "served": self.served[i],
                            "times": self.exchanges[i].get("times", 1)})
        return out


# ---- requests and matching ----------------------------------------------

class Received:
    """An incoming request, read once."""

    def __init__(self, handler):
        self.method = handler.command
        raw_path, _, raw_query = handler.path.partition("?")
        self.path = raw_path
        self.query = {}
        for name, value in urllib.parse.parse_qsl(raw_query,
                                                  keep_blank_values=True):
            if name in self.query:
                old = self.query[name]
                self.query[name] = (old if isinstance(old, list)
                                    else [old]) + [value]
            else:
                self.query[name] = value
        self.headers = {}
        for name, value in handler.headers.items():
            name = name.lower()
            if name in self.headers:
                value = self.headers[name] + ", " + value
            self.headers[name] = value
        self.body = _read_body(handler)
        self.json = None
        self.form = self.files = None
        ctype = self.headers.get("content-type", "")
        if ctype.lower().startswith("multipart/form-data"):
            self.form, self.files = _parse_form(ctype, self.body)
        elif self.body:
            try:
                self.json = json.loads(self.body)
            except ValueError:
                self.json = NOT_JSON

    def text(self):
        return self.body.decode("utf-8", "replace")

    def log_entry(self):
        entry = {"method": self.method, "path": self.path,
                 "query": self.query,
                 "headers": {k: v for k, v in self.headers.items()
                             if k not in UNLOGGED_HEADERS},
                 "body": self.text()}
        if self.json is not None and self.json is not NOT_JSON:
            entry["json"] = self.json
        if self.form is not None:
            entry["form"] = self.form
            entry["files"] = self.files
            entry["body"] = "(multipart, %d bytes)" % len(self.body)
        return entry


def _parse_form(ctype, body):
    """A multipart/form-data body as ({field: text}, {field: {"filename",
    "content_type", "size", "sha256"}}); ({}, {}) when it does not
    parse. A repeated field keeps its last value."""
    form, files = {}, {}
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        return form, files
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            form[name] = data.decode("utf-8", "replace")
        else:
            files[name] = {"filename": filename,
                           "content_type": part.get_content_type(),
                           "size": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()}
    return form, files


def _read_body(handler):
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        out = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def _show(value):
    text = json.dumps(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _is_base64(value):
    if not isinstance(value, str) or not value:
        return False
    if not BASE64_RE.match(value):
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _same_scalar(want, got):
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    numbers = (int, float)
    if isinstance(want, numbers) and isinstance(got, numbers):
        return want == got
    return type(want) is type(got) and want == got


def diff_json(want, got, where, out):
    """Appends to out one line per difference between the expected JSON
    (with the "*", "<base64>" and "<data-url>" wildcards) and got."""
    if want == ANY:
        return
    if want == "<base64>":
        if not _is_base64(got):
            out.append("%s: expected base64, got %s" % (where, _show(got)))
        return
    if want == "<data-url>":
        if not (isinstance(got, str) and got.startswith("data:")
                and "," in got):
            out.append("%s: expected a data: URL, got %s"
                       % (where, _show(got)))
        return
    if isinstance(want, dict):
        if not isinstance(got, dict):
            out.append("%s: expected an object, got %s" % (where, _show(got)))
            return
        for key, value in want.items():
            if key not in got:
                out.append("%s.%s: missing (expected %s)"
                           % (where, key, _show(value)))
            else:
                diff_json(value, got[key], "%s.%s" % (where, key), out)
        for key in got:
            if key not in want:
                out.append("%s.%s: unexpected (got %s)"
                           % (where, key, _show(got[key])))
        return
    if isinstance(want, list):
        if not isinstance(got, list):
            out.append("%s: expected an array, got %s" % (where, _show(got)))
            return
        for i, (w, g) in enumerate(zip(want, got)):
            diff_json(w, g, "%s[%d]" % (where, i), out)
        for i in range(len(got), len(want)):
            out.append("%s[%d]: missing (expected %s)"
                       % (where, i, _show(want[i])))
        for i in range(len(want), len(got)):
            out.append("%s[%d]: unexpected (got %s)"
                       % (where, i, _show(got[i])))
        return
    if not _same_scalar(want, got):
        out.append("%s: expected %s, got %s" % (where, _show(want), _show(got)))


def diff_request(want, req):
    """The differences between an exchange's expected request and req, one
    readable line each; empty when it matches."""
    out = []
    method = want.get("method")
    if method and method.upper() != req.method:
        out.append("method: expected %s, got %s" % (method.upper(),
                                                    req.method))
    paths = (req.path, urllib.parse.unquote(req.path))
    if "path" in want and want["path"] not in paths:
        out.append("path: expected %s, got %s" % (want["path"], req.path))
    if "path_prefix" in want and \
            not any(p.startswith(want["path_prefix"]) for p in paths):
        out.append("path: expected prefix %s, got %s"
                   % (want["path_prefix"], req.path))
    if "query" in want:
        for name, value in want["query"].items():
            if name not in req.query:
                out.append("query.%s: missing (expected %s)"
                           % (name, _show(value)))
            elif value != ANY and req.query[name] != value:
                out.append("query.%s: expected %s, got %s"
                           % (name, _show(value), _show(req.query[name])))
        for name in req.query:
            if name not in want["query"]:
                out.append("query.%s: unexpected (got %s)"
                           % (name, _show(req.query[name])))
    for name, value in want.get("headers", {}).items():
        got = req.headers.get(name.lower())
        if value is None:
            if got is not None:
                out.append("headers.%s: expected absent, got %s"
                           % (name, _show(got)))
        elif got is None:
            out.append("headers.%s: missing (expected %s)"
                       % (name, _show(value)))
        elif value != ANY and got != value:
            out.append("headers.%s: expected %s, got %s"
                       % (name, _show(value), _show(got)))
    if want.get("body_absent") and req.body:
        out.append("body: expected none, got %d bytes: %s"
                   % (len(req.body), _show(req.text())))
    for key in ("form", "files"):
        if key not in want:
            continue
        got = getattr(req, key)
        if got is None:
            out.append("body: expected multipart/form-data, got %s"
                       % _show(req.headers.get("content-type", "none")))
        elif want[key] != ANY:
            diff_json(want[key], got, key, out)
    if "json" in want:
        if req.json is None:
            out.append("body: expected JSON, got no body")
        elif req.json is NOT_JSON:
            out.append("body: expected JSON, got %s" % _show(req.text()))
        else:
            diff_json(want["json"], req.json, "json", out)
    return out


# ---- answers ------------------------------------------------------------

class Reply:
    """What to send back: status, headers, and a body (bytes) or a file."""

    def __init__(self, status, headers=None, body=b"", path=None,
                 delay=0.0, close=False):
        self.status = status
        self.headers = headers if headers is not None else {}
        self.body = body
        self.path = path
        self.delay = delay
        self.close = close

    @classmethod
    def json(cls, status, doc, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return cls(status, h, json.dumps(doc).encode())

    def send(self, handler):
        if self.delay:
            time.sleep(self.delay)
        if self.close:
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        try:
            handler.send_response(self.status)
            for name, value in self.headers.items():
                handler.send_header(name, value)
            if self.path is not None:
                size = os.path.getsize(self.path)
                handler.send_header("Content-Length", str(size))
                handler.end_headers()
                if handler.command != "HEAD":
                    with open(self.path, "rb") as f:
                        shutil.copyfileobj(f, handler.wfile)
            else:
                handler.send_header("Content-Length", str(len(self.body)))
                handler.end_headers()
                if handler.command != "HEAD":
                    handler.wfile.write(self.body)
        except OSError:
            handler.close_connection = True  # the client went away


def _substitute(value, base):
    if isinstance(value, str):
        return value.replace(BASE_TOKEN, base)
    if isinstance(value, list):
        return [_substitute(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, base) for k, v in value.items()}
    return value


def _has_header(headers, name):
    return any(k.lower() == name.lower() for k in headers)


EXPIRED_BODIES = {
    403: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"
         "AccessDenied</Code><Message>Request has expired</Message></Error>",
    404: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"
         "NoSuchKey</Code><Message>The specified key does not exist."
         "</Message></Error>",
}


# ---- the server ---------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue for curl
    server_version = "fake-provider/1"

    def _dispatch(self):
        self.server.fake.handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # load tests open many connections at once


class FakeProvider:
    """A fake upstream on 127.0.0.1. scenarios: a scenario (file path or
    dict) or a list of them, each loaded as a track; video: the MP4 that
    "$VIDEO" stands for (default: env VG_FAKE_VIDEO); generic: a provider
    name to answer any number of jobs without a script (see GENERIC)."""

    def __init__(self, scenarios=None, port=0, video=None, generic=None,
                 job_ms=3000, log_limit=10000, poll_delay_ms=0):
        self.video = video or os.environ.get(VIDEO_ENV)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.log_limit = log_limit
        self.tracks = []
        self.generic = None
        if generic is not None:
            if generic not in GENERIC:
                raise ValueError("generic: no %r (have %s)"
                                 % (generic, ", ".join(sorted(GENERIC))))
            self.generic = GENERIC[generic](job_ms / 1000.0,
                                            poll_delay_ms / 1000.0)
        self._clear()
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.httpd.fake = self
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = None
        if scenarios is not None:
            if isinstance(scenarios, (str, os.PathLike, dict)):
                scenarios = [scenarios]
            for s in scenarios:
                self.load(s)

    def _clear(self):
        self.served = 0
        self.mismatches = []
        self.log = []
        self.log_dropped = 0
        if self.generic is not None:
            self.generic.clear()

    # -- life

    def start(self):
        if self.thread is None:
            self.thread = threading.Thread(target=self.httpd.serve_forever,
                                           args=(0.05,),
                                           name="fake-provider", daemon=True)
            self.thread.start()
        return self

    def stop(self):
        if self.thread is not None:
            self.httpd.shutdown()
            self.thread = None
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- scripts

    def load(self, scenario):
        """Adds a scenario (path or dict) as a new track; returns its
        number."""
        scenario, directory = read_scenario(scenario)
        with self.lock:
            track = Track(len(self.tracks), scenario, directory)
            self.tracks.append(track)
            self.changed.notify_all()
            return track.number

    def reset(self):
        """Forgets every track, the log and the mismatches."""
        with self.lock:
            self.tracks = []
            self._clear()
            self.changed.notify_all()

    def report(self):
        with self.lock:
            doc = {"served": self.served,
                   "mismatches": self.mismatches,
                   "remaining": [r for t in self.tracks
                                 for r in t.remaining()],
                   "log": self.log,
                   "log_dropped": self.log_dropped}
            if self.generic is not None:
                doc["generic"] = self.generic.stats()
            return json.loads(json.dumps(doc))  # a copy the caller owns

    def wait_done(self, timeout=30):
        """Waits until every track has been served in full; False when
        that did not happen within timeout seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while any(t.remaining() for t in self.tracks):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
            return True

    def requests(self, method=None, path=None):
        """The log entries of requests with that method and path."""
        return [e for e in self.report()["log"]
                if (method is None or e["method"] == method)
                and (path is None or e["path"] == path)]

    def problems(self):
        """Readable lines for each mismatch and each exchange not served;
        empty when the scenarios were followed exactly."""
        rep = self.report()
        out = ["mismatch: " + m["error"] for m in rep["mismatches"]]
        out += ["not served: %s #%d %s (%d of %d)"
                % (r["track"], r["index"], r["name"], r["served"],
                   r["times"]) for r in rep["remaining"]]
        return out

    def assert_clean(self, timeout=0):
        """Raises AssertionError listing the problems, if any (after
        waiting up to timeout seconds for the tracks to finish)."""
        if timeout:
            self.wait_done(timeout)
        problems = self.problems()
        if problems:
            raise AssertionError("fake provider %s:\n  %s"
                                 % (self.url, "\n  ".join(problems)))

    # -- serving

    def handle(self, handler):
        req = Received(handler)
        if req.path in CONTROL_PATHS:
            reply = self._control(req)
        else:
            with self.lock:
                reply, entry = self._answer(req)
                entry["status"] = reply.status
                if reply.close:
                    entry["status"] = None
                    entry["closed"] = True
                self._record(entry)
                self.changed.notify_all()
        reply.send(handler)

    def _record(self, entry):
        if len(self.log) < self.log_limit:
            entry["n"] = len(self.log) + self.log_dropped
            self.log.append(entry)
        else:
            self.log_dropped += 1

    def _answer(self, req):
        """(Reply, log entry) for a provider request; holds the lock."""
        entry = req.log_entry()
        entry["time"] = time.time()
        candidates = []
        for track in self.tracks:
            tried = []
            for i in track.candidates():
                diff = diff_request(track.exchanges[i]["request"], req)
                if not diff:
                    return self._serve(track, i, req, entry)
                tried.append({"track": track.name, "index": i,
                              "name": exchange_name(track.exchanges[i]),
                              "diff": diff})
            if not tried:
                tried.append({"track": track.name, "index": None,
                              "name": None,
                              "diff": ["every exchange already served"]})
            candidates += tried
        if self.generic is not None:
            reply = self.generic.answer(req, self)
            if reply is not None:
                self.served += 1
                entry["generic"] = True
                return reply, entry
            candidates.append({"track": "generic:" + self.generic.name,
                               "index": None, "name": None,
                               "diff": ["not a request of this protocol"]})
        if not candidates:
            candidates.append({"track": None, "index": None, "name": None,
                               "diff": ["no scenario loaded"]})
        error = "%s %s matches no expected exchange: %s" % (
            req.method, req.path, "; ".join(
                "%s #%s %s: %s" % (c["track"], c["index"], c["name"],
                                   ", ".join(c["diff"]))
                for c in candidates))
        return self._mismatch(req, error, candidates), entry

    def _mismatch(self, req, error, candidates=()):
        self.mismatches.append({"method": req.method, "path": req.path,
                                "query": req.query, "body": req.text(),
                                "error": error,
                                "candidates": list(candidates)})
        return Reply.json(500, {"fake_error": error,
                                "candidates": list(candidates)})

    def _serve(self, track, i, req, entry):
        ex = track.exchanges[i]
        age = track.take(i)
        self.served += 1
        entry.update(track=track.name, index=i)
        resp = ex["response"]
        delay = resp.get("delay_ms", 0) / 1000.0
        if "expires_after_ms" in ex and age * 1000 > ex["expires_after_ms"]:
            status = ex.get("expired_status", 403)
            entry["expired"] = True
            return Reply(status, {"Content-Type": "application/xml"},
                         EXPIRED_BODIES.get(status, "").encode(),
                         delay=delay), entry
        headers = _substitute(resp.get("headers", {}), self.url)
        status = resp.get("status", 302 if "redirect" in resp else 200)
        reply = Reply(status, headers, delay=delay,
                      close=bool(resp.get("close")))
        if "json" in resp:
            reply.body = json.dumps(_substitute(resp["json"],
                                                self.url)).encode()
        elif "body" in resp:
            reply.body = _substitute(resp["body"], self.url).encode()
        elif "redirect" in resp:
            headers["Location"] = _substitute(resp["redirect"], self.url)
        elif "file" in resp:
            reply.path = self._file(resp["file"], track.directory)
            if reply.path is None:
                return self._mismatch(req, "%s #%d: no file %r (set %s or "
                                      "video=)" % (track.name, i,
                                                   resp["file"], VIDEO_ENV)), \
                    entry
            if not _has_header(headers, "Content-Type"):
                headers["Content-Type"] = "video/mp4"
        if ("json" in resp or "body" in resp) and \
                not _has_header(headers, "Content-Type"):
            headers["Content-Type"] = "application/json"
        return reply, entry

    def _file(self, name, directory):
        path = self.video if name == VIDEO_TOKEN else \
            os.path.join(directory, name)
        return path if path and os.path.isfile(path) else None

    def video_reply(self):
        """The $VIDEO file as a Reply (generic mode's downloads), or None
        when there is none."""
        path = self._file(VIDEO_TOKEN, "")
        if path is None:
            return None
        return Reply(200, {"Content-Type": "video/mp4"}, path=path)

    def _control(self, req):
        if req.path == "/_fake/report" and req.method == "GET":
            return Reply.json(200, self.report())
        if req.path == "/_fake/reset" and req.method == "POST":
            self.reset()
            return Reply.json(200, {"reset": True})
        if req.path == "/_fake/load" and req.method == "POST":
            doc = req.json
            try:
                if not isinstance(doc, dict):
                    raise ValueError("the body must be a scenario object")
                source = doc["path"] if set(doc) == {"path"} else doc
                number = self.load(source)
            except (OSError, ValueError, KeyError) as e:
                return Reply.json(400, {"fake_error": str(e)})
            return Reply.json(200, {"track": number,
                                    "name": self.tracks[number].name})
        return Reply.json(405, {"fake_error": "%s %s: use GET report, POST "
                                "load, POST reset" % (req.method, req.path)})


# ---- generic mode: any number of jobs, no script --------------------------

class Generic:
    """Answers one provider's protocol for any number of jobs: each submit
    gets a fresh id; polls say queued (first fifth of job_s), then running
    with progress, then succeeded with a video URL on the fake once job_s
    has passed since the submit. Cheap: one dict lookup per poll. Paths
    are matched by their ends, so any base_url prefix works."""
    name = "generic"
    VIDEO_PREFIX = "/generic/video/"

    def __init__(self, job_s, poll_delay_s=0.0):
        self.job_s = job_s
        self.poll_delay_s = poll_delay_s  # each status read answers late
        self.clear()

    def clear(self):
        self.jobs = {}  # id -> [submitted (monotonic), cancelled, extra]
        self.counts = {"submits": 0, "polls": 0, "downloads": 0,
                       "cancels": 0}

    def stats(self):
        return dict(self.counts, provider=self.name, jobs=len(self.jobs))

    def phase(self, job):
        """("queued" | "running" | "succeeded" | "cancelled", progress)."""
        if job[1]:
            return "cancelled", 0
        elapsed = time.monotonic() - job[0]
        if elapsed >= self.job_s:
            return "succeeded", 100
        if elapsed < self.job_s / 5:
            return "queued", 0
        return "running", int(100 * elapsed / self.job_s)

    def new_job(self, job_id, extra=None):
        self.jobs[job_id] = [time.monotonic(), False, extra]
        self.counts["submits"] += 1
        return job_id

    def video_url(self, base, job_id):
        return "%s%s%s.mp4" % (base, self.VIDEO_PREFIX, job_id)

    def download(self, req, fake):
        """The video file; a recorded mismatch when there is none."""
        self.counts["downloads"] += 1
        return fake.video_reply() or fake._mismatch(
            req, "generic download: no video (set %s or video=)"
            % VIDEO_ENV)

    def answer(self, req, fake):
        """A Reply, or None when req is not part of this protocol."""
        if req.method == "GET" and req.path.startswith(self.VIDEO_PREFIX):
            job_id = req.path[len(self.VIDEO_PREFIX):].rsplit(".", 1)[0]
            if job_id not in self.jobs:
                return Reply(404, {"Content-Type": "application/xml"},
                             EXPIRED_BODIES[404].encode())
            return self.download(req, fake)
        reply = self.route(req, fake)
        if reply is not None and req.method == "GET":
            reply.delay = self.poll_delay_s  # a status read
        return reply

    def route(self, req, fake):
        raise NotImplementedError


def _body(req):
    if req.form is not None:
        return req.form
    return req.json if isinstance(req.json, dict) else {}


class GenericNovita(Generic):
    name = "novita"
    SUBMIT = "/v3/async/"
    POLL = "/v3/async/task-result"
    STATUS = {"queued": "TASK_STATUS_QUEUED",
              "running": "TASK_STATUS_PROCESSING",
              "succeeded": "TASK_STATUS_SUCCEED",
              "cancelled": "TASK_STATUS_FAILED"}

    def route(self, req, fake):
        if req.method == "POST" and self.SUBMIT in req.path:
            endpoint = req.path.rsplit("/", 1)[-1]
            kind = "IMG_TO_VIDEO" if "i2v" in endpoint else "TXT_TO_VIDEO"
            return Reply.json(200, {"task_id": self.new_job(
                str(uuid.uuid4()), kind)})
        if req.method != "GET" or not req.path.endswith(self.POLL):
            return None
        task_id = req.query.get("task_id")
        job = self.jobs.get(task_id)
        if job is None:
            return Reply.json(404, {"code": 404, "reason": "TASK_NOT_FOUND",
                                    "message": "task not found",
                                    "metadata": {}})
        self.counts["polls"] += 1
        state, progress = self.phase(job)
        videos = []
        if state == "succeeded":
            videos = [{"video_url": self.video_url(fake.url, task_id),
                       "video_url_ttl": "3600", "video_type": "mp4"}]
        return Reply.json(200, {
            "extra": {"seed": "42"},
            "task": {"task_id": task_id, "task_type": job[2],
                     "status": self.STATUS[state],
                     "reason": "cancelled" if state == "cancelled" else "",
                     "eta": 0, "progress_percent": str(progress)},
            "images": [], "videos": videos, "audios": []})


class GenericBytePlus(Generic):
    name = "byteplus"
    TASKS = "/contents/generations/tasks"

    def route(self, req, fake):
        if req.method == "POST" and req.path.endswith(self.TASKS):
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
            job_id = "cgt-%s-%s" % (stamp, uuid.uuid4().hex[:8])
            model = _body(req).get("model", "seedance-1-0-pro-250528")
            return Reply.json(200, {"id": self.new_job(job_id, model)})
        _, sep, job_id = req.path.rpartition(self.TASKS + "/")
        if not sep or "/" in job_id:
            return None
        job = self.jobs.get(job_id)
        if job is None:
            return Reply.json(404, {"error": {
                "code": "ResourceNotFound", "type": "NotFound",
                "message": "The specified task %s is not found." % job_id}})
        if req.method == "DELETE":
            self.counts["cancels"] += 1
            job[1] = True
            return Reply.json(200, {})
        if req.method != "GET":
            return None
        self.counts["polls"] += 1
        state, _ = self.phase(job)
        now = int(time.time())
        doc = {"id": job_id, "model": job[2], "status": state,
               "created_at": now, "updated_at": now}
        if state == "succeeded":
            doc.update(content={"video_url": self.video_url(fake.url,
                                                            job_id)},
                       usage={"completion_tokens": 108900,
                              "total_tokens": 108900},
                       seed=42, resolution="720p", ratio="16:9", duration=5,
                       framespersecond=24, service_tier="default")
        return Reply.json(200, doc)


class GenericOpenAI(Generic):
    name = "openai"
    VIDEOS = "/v1/videos"
    STATUS = {"queued": "queued", "running": "in_progress",
              "succeeded": "completed", "cancelled": "failed"}

    def route(self, req, fake):
        if req.method == "POST" and req.path == self.VIDEOS:
            body = _body(req)  # JSON or multipart fields
            spec = {"model": body.get("model", "sora-2"),
                    "prompt": body.get("prompt", ""),
                    "seconds": str(body.get("seconds", "4")),
                    "size": body.get("size", "1280x720"),
                    "created_at": int(time.time())}
            job_id = "video_" + uuid.uuid4().hex + uuid.uuid4().hex[:16]
            self.new_job(job_id, spec)
            return Reply.json(200, self.video(job_id, self.jobs[job_id]))
        if not req.path.startswith(self.VIDEOS + "/"):
            return None
        job_id, _, tail = req.path[len(self.VIDEOS) + 1:].partition("/")
        job = self.jobs.get(job_id)
        if job is None:
            return Reply.json(404, {"error": {
                "message": "Video with id '%s' not found." % job_id,
                "type": "invalid_request_error", "param": None,
                "code": "not_found"}})
        if req.method == "GET" and tail == "content":
            if self.phase(job)[0] != "succeeded":
                return Reply.json(400, {"error": {
                    "message": "Video is not ready yet.",
                    "type": "invalid_request_error", "param": None,
                    "code": "video_not_ready"}})
            return self.download(req, fake)
        if tail:
            return None
        if req.method == "DELETE":
            self.counts["cancels"] += 1
            job[1] = True
            return Reply.json(200, {"id": job_id, "object": "video.deleted",
                                    "deleted": True})
        if req.method != "GET":
            return None
        self.counts["polls"] += 1
        return Reply.json(200, self.video(job_id, job),
                          {"openai-poll-after-ms": "200"})

    def video(self, job_id, job):
        state, progress = self.phase(job)
        spec = job[2]
        doc = {"id": job_id, "object": "video", "model": spec["model"],
               "status": self.STATUS[state], "progress": progress,
               "created_at": spec["created_at"], "completed_at": None,
               "expires_at": None, "prompt": spec["prompt"],
               "seconds": spec["seconds"], "size": spec["size"],
               "remixed_from_video_id": None, "error": None}
        if state == "succeeded":
            doc["completed_at"] = spec["created_at"] + int(self.job_s)
            doc["expires_at"] = doc["completed_at"] + 3600
        if state == "cancelled":
            doc["error"] = {"code": "cancelled",
                            "message": "The video was deleted."}
        return doc


class GenericGoogle(Generic):
    name = "google"
    CREATE = ":predictLongRunning"
    RESPONSE = ("type.googleapis.com/google.ai.generativelanguage.v1beta."
                "PredictLongRunningResponse")

    def route(self, req, fake):
        path = urllib.parse.unquote(req.path)
        if req.method == "POST" and path.endswith(self.CREATE):
            model = path[:-len(self.CREATE)].rsplit("/", 1)[-1]
            op = self.new_job(uuid.uuid4().hex[:12], model)
            return Reply.json(200, {"name": "models/%s/operations/%s"
                                    % (model, op)})
        _, sep, op = path.rpartition("/operations/")
        if req.method != "GET" or not sep:
            return None
        job = self.jobs.get(op)
        if job is None:
            return Reply.json(404, {"error": {
                "code": 404, "message": "Operation not found: " + op,
                "status": "NOT_FOUND"}})
        self.counts["polls"] += 1
        name = "models/%s/operations/%s" % (job[2], op)
        state, _ = self.phase(job)
        if state != "succeeded":
            return Reply.json(200, {"name": name, "done": False})
        return Reply.json(200, {"name": name, "done": True, "response": {
            "@type": self.RESPONSE, "generateVideoResponse": {
                "generatedSamples": [{"video": {
                    "uri": self.video_url(fake.url, op)}}]}}})


class GenericFal(Generic):
    name = "fal"
    QUEUE = "/generic/fal/requests/"

    def route(self, req, fake):
        if req.method == "POST" and not req.path.startswith("/generic/"):
            rid = self.new_job(str(uuid.uuid4()))
            return Reply.json(200, dict(self.urls(fake.url, rid),
                                        status="IN_QUEUE", request_id=rid,
                                        queue_position=0))
        if not req.path.startswith(self.QUEUE):
            return None
        rid, _, tail = req.path[len(self.QUEUE):].partition("/")
        job = self.jobs.get(rid)
        if job is None:
            return Reply.json(404, {"detail": "Request not found"})
        state, _ = self.phase(job)
        if req.method == "PUT" and tail == "cancel":
            self.counts["cancels"] += 1
            if state == "succeeded":
                return Reply.json(400, {"status": "ALREADY_COMPLETED"})
            job[1] = True
            return Reply.json(202, {"status": "CANCELLATION_REQUESTED"})
        if req.method != "GET" or tail not in ("", "status"):
            return None
        self.counts["polls"] += 1
        if tail == "status":
            status = {"queued": "IN_QUEUE", "running": "IN_PROGRESS"}.get(
                state, "COMPLETED")
            doc = dict(self.urls(fake.url, rid), status=status,
                       request_id=rid, logs=None, metrics={})
            if status == "IN_QUEUE":
                doc["queue_position"] = 0
            return Reply.json(200, doc)
        if state == "cancelled":
            return Reply.json(400, {"detail": "Request was cancelled",
                                    "error_type": "request_cancelled"})
        if state != "succeeded":
            return Reply.json(400, {"detail": "Request is still in progress"})
        return Reply.json(200, {"video": {
            "url": self.video_url(fake.url, rid),
            "content_type": "video/mp4", "file_name": "output.mp4"},
            "seed": 42})

    def urls(self, base, rid):
        url = base + self.QUEUE + rid
        return {"response_url": url, "status_url": url + "/status",
                "cancel_url": url + "/cancel"}


class GenericReplicate(Generic):
    name = "replicate"
    PREDICTIONS = "/predictions"
    STATUS = {"queued": "starting", "running": "processing",
              "succeeded": "succeeded", "cancelled": "canceled"}

    def route(self, req, fake):
        path = req.path
        if req.method == "POST" and path.endswith(self.PREDICTIONS):
            pid = base64.b32encode(uuid.uuid4().bytes).decode().lower()[:26]
            model = path[:-len(self.PREDICTIONS)].split("/models/", 1)[-1]
            self.new_job(pid, model)
            return Reply.json(201, self.prediction(fake.url, pid,
                                                   self.jobs[pid]))
        _, sep, rest = path.rpartition(self.PREDICTIONS + "/")
        if not sep:
            return None
        pid, _, tail = rest.partition("/")
        job = self.jobs.get(pid)
        if job is None:
            return Reply.json(404, {"title": "Not found", "status": 404,
                                    "detail": "Prediction not found"})
        if req.method == "POST" and tail == "cancel":
            self.counts["cancels"] += 1
            if self.phase(job)[0] != "succeeded":
                job[1] = True
            return Reply.json(200, self.prediction(fake.url, pid, job))
        if req.method != "GET" or tail:
            return None
        self.counts["polls"] += 1
        return Reply.json(200, self.prediction(fake.url, pid, job))

    def prediction(self, base, pid, job):
        state, _ = self.phase(job)
        url = "%s/v1/predictions/%s" % (base, pid)
        return {"id": pid, "model": job[2], "version": "hidden",
                "input": {}, "logs": "", "error": None,
                "status": self.STATUS[state],
                "output": (self.video_url(base, pid)
                           if state == "succeeded" else None),
                "urls": {"get": url, "cancel": url + "/cancel"}}


GENERIC = {g.name: g for g in (GenericNovita, GenericBytePlus, GenericOpenAI,
                               GenericGoogle, GenericFal, GenericReplicate)}


# ---- command line -------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Serve scripted provider exchanges on 127.0.0.1 "
                    "(see tests/fakes/README.md).")
    parser.add_argument("--port", type=int, default=0,
                        help="port to listen on (0: any free one)")
    parser.add_argument("--video", help="the MP4 for \"$VIDEO\" "
                        "(default: $%s)" % VIDEO_ENV)
    parser.add_argument("--generic", choices=sorted(GENERIC),
                        help="answer any number of jobs of this provider")
    parser.add_argument("--job-ms", type=int, default=3000,
                        help="generic mode: how long each job runs")
    parser.add_argument("--poll-delay-ms", type=int, default=0,
                        help="generic mode: each status read answers "
                        "this late")
    parser.add_argument("scenarios", nargs="*", help="scenario JSON files")
    args = parser.parse_args(argv)
    fake = FakeProvider(args.scenarios, port=args.port, video=args.video,
                        generic=args.generic, job_ms=args.job_ms,
                        poll_delay_ms=args.poll_delay_ms)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    fake.start()
    print("listening on %d" % fake.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        fake.stop()
        problems = fake.problems()
        print("fake provider: %d served, %d problem(s)%s"
              % (fake.report()["served"], len(problems),
                 "".join("\n  " + p for p in problems)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
