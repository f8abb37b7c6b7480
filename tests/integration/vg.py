"""Test harness: starts a vidgate server on a free loopback port with a
fresh data directory, and talks HTTP to it with the standard library only.

Each test class gets its own server (setUpClass), so tests can run in
parallel under ctest without sharing state.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

VIDGATE = os.environ.get("VIDGATE_BIN", "../../build/vidgate")
# The bearer that shows /healthz in full (checks, providers); every test
# server gets it.
OPERATOR_TOKEN = "vg-operator-" + uuid.uuid4().hex
SOURCE = os.environ.get("VG_SOURCE_DIR", "../..")
# Under tests/support/postgres.sh run, a PostgreSQL server: then every
# test server keeps its state in a database of its own there, instead of
# SQLite in its data directory (the postgres.* tests of ctest).
PG_URL = os.environ.get("VG_TEST_PG_URL")


def psql(url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                   check=True, capture_output=True, timeout=60)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


def multipart(fields, files=()):
    """fields: {name: str}; files: [(field, filename, bytes, type)]."""
    boundary = "vgboundary" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        out += b"--" + boundary.encode() + b"\r\n"
        out += ('Content-Disposition: form-data; name="%s"\r\n\r\n'
                % name).encode()
        out += value.encode() if isinstance(value, str) else value
        out += b"\r\n"
    for field, filename, data, ctype in files:
        out += b"--" + boundary.encode() + b"\r\n"
        out += ('Content-Disposition: form-data; name="%s"; '
                'filename="%s"\r\n' % (field, filename)).encode()
        out += ("Content-Type: %s\r\n\r\n" % ctype).encode()
        out += data + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    return bytes(out), "multipart/form-data; boundary=" + boundary


class Server:
    def __init__(self, config=None, env=None, args=()):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="vgtest-")
        self.data = os.path.join(self.dir, "data")
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.dir, "config.json")
            with open(self.config_path, "w") as f:
                json.dump(config, f)
        self.env = dict(os.environ)
        self.env["VIDGATE_OPERATOR_TOKEN"] = OPERATOR_TOKEN
        self.env.update(env or {})
        self.pg_db = None
        if PG_URL and "VIDGATE_DATABASE_URL" not in self.env:
            self.pg_db = "vgi_" + uuid.uuid4().hex[:16]
            psql(PG_URL + "postgres", "CREATE DATABASE " + self.pg_db)
            self.env["VIDGATE_DATABASE_URL"] = PG_URL + self.pg_db
        self.args = list(args)
        self.proc = None
        self.key = None
        self.developer_id = None

    def cli(self, *args, check=True):
        cmd = [VIDGATE, "--data", self.data]
        if self.config_path:
            cmd += ["--config", self.config_path]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True,
                           env=self.env, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError("vidgate %s failed: %s" % (args, p.stderr))
        return p

    def start(self):
        cmd = [VIDGATE, "serve", "--listen", "127.0.0.1:%d" % self.port,
               "--data", self.data] + self.args
        if self.config_path:
            cmd += ["--config", self.config_path]
        for f in (getattr(self, "stdout", None), getattr(self, "stderr", None)):
            if f is not None:
                f.close()
        self.stdout = open(os.path.join(self.dir, "stdout.log"), "a+")
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "a+")
        self.proc = subprocess.Popen(cmd, stdout=self.stdout,
                                     stderr=self.stderr, env=self.env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited: " + self.log(5000))
            try:
                if self.request("GET", "/healthz").status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("server did not start: " + self.log(5000))
        self.stdout.seek(0)
        out = self.stdout.read()
        for line in out.splitlines():
            if line.startswith("vg_"):
                self.key = line.strip()
            if "developer id " in line:
                self.developer_id = line.split("developer id ")[1].split(")")[0]
        return self

    def log(self, tail=None):
        self.stderr.flush()
        with open(os.path.join(self.dir, "stderr.log")) as f:
            text = f.read()
        return text[-tail:] if tail else text

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        rc = self.stop()
        log = self.log() if self.proc else ""
        for f in (getattr(self, "stdout", None), getattr(self, "stderr", None)):
            if f is not None:
                f.close()
        # A sanitizer report, a leak at exit or a crash fails the test.
        bad = [m for m in ("AddressSanitizer", "LeakSanitizer",
                           "runtime error:") if m in log]
        if (rc not in (0, None) or bad) and self.proc is not None:
            raise AssertionError("server exited with %r %s:\n%s"
                                 % (rc, bad, log[-8000:]))
        if os.environ.get("VG_KEEP_TEST_DIRS") is None:
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.pg_db:
                psql(PG_URL + "postgres", "DROP DATABASE IF EXISTS %s"
                     " WITH (FORCE)" % self.pg_db)

    def request(self, method, path, body=None, headers=None, timeout=300):
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def health(self):
        """/healthz as the operator sees it (checks and providers)."""
        return self.request("GET", "/healthz", headers={
            "Authorization": "Bearer " + OPERATOR_TOKEN})

    def auth(self, key=None):
        return {"Authorization": "Bearer " + (key or self.key)}

    def token(self, key=None):
        r = self.request("POST", "/v1/ula/oauth-authentication?api_key="
                         + (key or self.key))
        assert r.status == 200, r
        return r.json["access_token"]

    def generate(self, body, key=None, headers=None):
        h = self.auth(key)
        h.update(headers or {})
        return self.request("POST", "/v1/ula/generate-video", body, h)

    def credits(self, key=None, developer_id=None):
        r = self.request("GET", "/v1/developer/%s/get-credits"
                         % (developer_id or "me"), headers=self.auth(key))
        assert r.status == 200, r
        return r.json["availableCredits"]["creditBalance"]

    def fetch_url(self, url, headers=None):
        assert url.startswith("http://127.0.0.1:%d/" % self.port), url
        return self.request("GET", url.split(str(self.port), 1)[1],
                            headers=headers)


def request_body(**overrides):
    body = {
        "model": "vidgate-local",
        "prompt": "a cat drinking milk in a cozy kitchen",
        "resolution": "480P",
        "aspect_ratio": "1:1",
        "duration": 4,
        "generate_audio": False,
        "camera_fixed": False,
        "service_tier": "default",
    }
    for k, v in overrides.items():
        if v is DELETE:
            body.pop(k, None)
        else:
            body[k] = v
    return body


DELETE = object()


# The frame-size table of the README: short side = resolution.
SIZES = {
    "480P": {"16:9": (854, 480), "9:16": (480, 854), "1:1": (480, 480),
             "4:3": (640, 480), "3:4": (480, 640), "21:9": (1120, 480)},
    "720P": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720),
             "4:3": (960, 720), "3:4": (720, 960), "21:9": (1680, 720)},
    "1080P": {"16:9": (1920, 1080), "9:16": (1080, 1920),
              "1:1": (1080, 1080), "4:3": (1440, 1080),
              "3:4": (1080, 1440), "21:9": (2520, 1080)},
}
ASPECT_ALIASES = {"landscape": "16:9", "portrait": "9:16", "square": "1:1"}


def expected_shape(body):
    """(width, height, fps, duration, audio) a request body asks for."""
    res = str(body["resolution"]).upper()
    ar = ASPECT_ALIASES.get(body["aspect_ratio"], body["aspect_ratio"])
    width, height = SIZES[res][ar]
    as_bool = (lambda v: v if isinstance(v, bool) else
               str(v).lower() == "true")
    return (width, height, int(body.get("fps", 24)), int(body["duration"]),
            as_bool(body["generate_audio"]))


def check_video(tc, server, response, body):
    """Downloads the response's video and checks it with ffprobe against
    what `body` asked for: codec, pixel format, size, fps, exact frame
    count, duration within one frame, audio exactly when requested."""
    width, height, fps, duration, audio = expected_shape(body)
    tc.assertEqual(response.status, 200, response)
    data = response.json["data"]
    tc.assertEqual(data["resolution"], "%d*%d" % (width, height))
    got = server.fetch_url(data["videos"][0]["url"])
    tc.assertEqual(got.status, 200, got)
    tc.assertEqual(got.header("Content-Type"), "video/mp4")
    fd, path = tempfile.mkstemp(suffix=".mp4")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(got.body)
        info = ffprobe(path)
    finally:
        os.unlink(path)
    info["bytes"] = got.body
    video = [s for s in info["streams"] if s["codec_type"] == "video"]
    sound = [s for s in info["streams"] if s["codec_type"] == "audio"]
    tc.assertEqual(len(video), 1)
    v = video[0]
    tc.assertEqual(v["codec_name"], "h264")
    tc.assertIn(v["profile"], ("High", "Main", "Constrained Baseline"))
    # Fast start: the index comes before the media data.
    from media import top_level_boxes
    boxes = top_level_boxes(got.body)
    tc.assertLess(boxes.index("moov"), boxes.index("mdat"), boxes)
    tc.assertEqual(v["pix_fmt"], "yuv420p")
    tc.assertEqual((v["width"], v["height"]), (width, height))
    tc.assertEqual(v["avg_frame_rate"], "%d/1" % fps)
    tc.assertEqual(int(v["nb_read_frames"]), fps * duration)
    tc.assertLessEqual(abs(float(v["duration"]) - duration), 1 / fps)
    tc.assertLessEqual(abs(float(info["format"]["duration"]) - duration),
                       1 / fps)
    tc.assertEqual(len(sound), 1 if audio else 0)
    if audio:
        tc.assertEqual(sound[0]["codec_name"], "aac")
        tc.assertLessEqual(abs(float(sound[0]["duration"]) - duration),
                           1 / fps)
    return info


def ffprobe(path):
    p = subprocess.run(["ffprobe", "-v", "error", "-count_frames",
                        "-print_format", "json", "-show_streams",
                        "-show_format", path],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


class ServerTest(unittest.TestCase):
    """A test case with one server per class. A class whose server needs
    something running first (a fake server, a socket its config names)
    starts it in start_fixture, which may set cls.config, and stops it in
    stop_fixture; it is stopped whatever happens to the server."""
    config = None
    env = None

    @classmethod
    def start_fixture(cls):
        pass

    @classmethod
    def stop_fixture(cls):
        pass

    def assertServesPromptly(self, times=5, limit=0.5):
        """GET /healthz answers 200 within `limit` seconds, `times` times
        in a row: the server is not stalled by what else it is doing."""
        for _ in range(times):
            start = time.time()
            r = self.server.request("GET", "/healthz")
            self.assertEqual(r.status, 200)
            self.assertLess(time.time() - start, limit)
            time.sleep(0.1)

    @classmethod
    def setUpClass(cls):
        cls.start_fixture()
        try:
            cls.server = Server(config=cls.config, env=cls.env).start()
        except Exception:
            cls.stop_fixture()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.cleanup()
        finally:
            cls.stop_fixture()


# ---------------------------------------------------------------------------
# The asynchronous job API: jobs, event streams, webhooks, restarts.
# (Additions only; everything above behaves as before.)
# ---------------------------------------------------------------------------
import base64
import hashlib
import hmac
import http.server
import threading
import urllib.parse

from catalog import LOCAL

FINISHED = ("succeeded", "failed", "cancelled")
JOB_FIELDS = {"id", "object", "status", "progress", "model", "provider",
              "service_tier", "seed", "created", "started", "finished",
              "eta", "attempts", "status_url", "events_url", "webhook_url",
              "error", "data"}
RESULT_FIELDS = {"id", "created", "text", "finish_reason", "provider",
                 "model", "usage", "latency_ms", "images", "videos",
                 "resolution", "audios"}

# The local model's capabilities and prices, served by the replay provider.
REPLAY_MODEL = dict(LOCAL, name="replay-video",
                    description="every job returns a copy of one MP4 (tests)",
                    provider="replay")

# A broken image: PNG magic (passes the upload check), nothing decodable
# behind it, so the local render fails the job with invalid_image.
BROKEN_PNG_URL = "data:image/png;base64," + base64.b64encode(
    b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20).decode()


def wait_for(predicate, timeout=60, interval=0.02):
    """Polls predicate until it returns something true; returns it, or
    None after timeout seconds."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() >= deadline:
            return None
        time.sleep(interval)


def make_mp4(path, seconds=1, size="320x240", audio=False):
    """A small real MP4 (ffmpeg's test pattern, with a sine tone when
    audio) for the replay provider and the fake upstreams."""
    sound = (["-f", "lavfi", "-i", "sine=f=440", "-c:a", "aac",
              "-shortest"] if audio else [])
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=%s:rate=24" % size] + sound +
                   ["-t", str(seconds), "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", path], check=True, timeout=60)
    return path


def replay_body(**overrides):
    """A request for the replay model (no render cost); prices as the
    local model: 480P, 4 s, no audio, default tier = 4 credits."""
    overrides.setdefault("model", REPLAY_MODEL["name"])
    return request_body(**overrides)


def price(body):
    """Credits the catalog's price formula charges for a request body
    (local and replay models share the prices)."""
    per_second = {"480P": 1, "720P": 2, "1080P": 4}
    thousandths = per_second[str(body["resolution"]).upper()] * 1000 * int(
        body["duration"])
    audio = body["generate_audio"]
    if audio is True or str(audio).lower() == "true":
        thousandths = -(-thousandths * 3 // 2)
    if body["service_tier"] == "flex":
        thousandths = -(-thousandths // 2)
    return thousandths / 1000


def jobs_config(mp4, delay_ms=0, concurrency=100, jobs=None, providers=None,
                limits=None, webhooks=None, **top):
    """The test catalog (catalog.CONFIG) plus the replay model and
    provider, and the job settings given."""
    from catalog import CONFIG
    cfg = dict(CONFIG)
    cfg["models"] = list(CONFIG["models"]) + [REPLAY_MODEL]
    cfg["shutdown_grace_s"] = 1
    prov = {"replay": {"file": mp4, "delay_ms": delay_ms,
                       "concurrency": concurrency}}
    prov.update(providers or {})
    cfg["providers"] = prov
    if jobs is not None:
        cfg["jobs"] = jobs
    if limits is not None:
        cfg["limits"] = limits
    if webhooks is not None:
        cfg["webhooks"] = webhooks
    cfg.update(top)
    return cfg


def result_without_link_query(data):
    """A finished generation's data with each video URL's query string
    (expiry and signature, which depend on when it was signed) removed."""
    data = json.loads(json.dumps(data))
    for v in data.get("videos") or []:
        v["url"] = v["url"].split("?", 1)[0]
    return data


class EventStream:
    """A Server-Sent Events stream read with http.client, line by line."""

    def __init__(self, conn, response):
        self.conn = conn
        self.response = response
        self.status = response.status
        self.headers = response.getheaders()
        self.retry = None
        self.comments = []
        self.lines = []  # every line read, in order
        self.ended = False

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def next_event(self):
        """The next event as {"id", "event", "data"} (data parsed as JSON
        when it is JSON), or None when the server closed the stream."""
        fields = {}
        data_lines = []
        while True:
            raw = self.response.readline()
            if not raw:
                self.ended = True
                return None
            line = raw.decode("utf-8").rstrip("\r\n")
            self.lines.append(line)
            if line == "":
                if data_lines or "id" in fields or "event" in fields:
                    break
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                data_lines.append(value)
            elif name == "retry":
                self.retry = value
            else:
                fields[name] = value
        text = "\n".join(data_lines)
        try:
            fields["data"] = json.loads(text)
        except ValueError:
            fields["data"] = text
        fields.setdefault("event", "message")
        return fields

    def read_all(self):
        out = []
        while True:
            ev = self.next_event()
            if ev is None:
                return out
            out.append(ev)

    def close(self):
        self.conn.close()


class WebhookReceiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST. `plan` is the
    status to answer to the 1st, 2nd, ... delivery; after it, `default`.
    path_plans[path] is a plan for one path's deliveries alone;
    path_delays[path] lists how long to stall before each answer there."""

    def __init__(self, plan=(), default=204, port=0):
        self.plan = list(plan)
        self.path_plans = {}  # path -> its own plan (counted per path)
        self.path_delays = {}  # path -> seconds to stall the n-th answer
        self.redirect_to = "/elsewhere"  # Location of 3xx answers
        self.default = default
        self.deliveries = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with receiver.cond:
                    if self.path in receiver.path_plans:
                        plan = receiver.path_plans[self.path]
                        index = len([d for d in receiver.deliveries
                                     if d["path"] == self.path])
                    else:
                        plan = receiver.plan
                        index = len(receiver.deliveries)
                    status = (plan[index] if index < len(plan)
                              else receiver.default)
                    delays = receiver.path_delays.get(self.path, [])
                    n = len([d for d in receiver.deliveries
                             if d["path"] == self.path])
                    delay = delays[n] if n < len(delays) else 0
                    receiver.deliveries.append({
                        "time": time.time(),
                        "path": self.path,
                        "headers": {k.lower(): v
                                    for k, v in self.headers.items()},
                        "body": body,
                        "status": status,
                    })
                    receiver.cond.notify_all()
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                     Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def for_path(self, path):
        with self.cond:
            return [d for d in self.deliveries if d["path"] == path]

    def wait(self, predicate, timeout=30):
        """Waits until predicate(deliveries) is true; returns the
        deliveries then (or None on timeout)."""
        deadline = time.time() + timeout
        with self.cond:
            while not predicate(list(self.deliveries)):
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return list(self.deliveries)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def webhook_signature(secret, msg_id, timestamp, body):
    """The Standard Webhooks v1 signature of a delivery."""
    assert secret.startswith("whsec_"), secret
    key = base64.b64decode(secret[len("whsec_"):])
    signed = b"%s.%s.%s" % (msg_id.encode(), str(timestamp).encode(), body)
    return "v1," + base64.b64encode(
        hmac.new(key, signed, hashlib.sha256).digest()).decode()


def webhook_signed_by(secret, delivery):
    h = delivery["headers"]
    expected = webhook_signature(secret, h["webhook-id"],
                                 h["webhook-timestamp"], delivery["body"])
    return expected in h.get("webhook-signature", "").split()


def _kill(self):
    """SIGKILL, no drain: a crash. Restart with start() (same data dir)
    before cleanup(), which treats a killed server as a failure."""
    if self.proc and self.proc.poll() is None:
        self.proc.kill()
        self.proc.wait(30)
    return self.proc.returncode if self.proc else None


def _restart(self):
    """Starts the server again on the same port and data dir."""
    return self.start()


def _new_key(self, name="other", credits="100"):
    """A new account with `credits` and its key."""
    return self.cli("keys", "create", "--name", name, "--credits",
                    str(credits)).stdout.strip()


def _key_id(self, key=None):
    """The id `keys list` shows for a key (matched by its prefix)."""
    key = key or self.key
    for line in self.cli("keys", "list").stdout.splitlines():
        cols = line.split()
        if len(cols) > 1 and key.startswith(cols[1]) and len(cols[1]) >= 6:
            return cols[0]
    raise AssertionError("key %s... not in keys list" % key[:10])


def _submit(self, body, key=None, headers=None):
    """POST generate-video with Prefer: respond-async (Response)."""
    h = {"Prefer": "respond-async"}
    h.update(headers or {})
    return self.generate(body, key, h)


def _submit_job(self, body, key=None, headers=None):
    """Like submit, but asserts 202 and returns the JOB object."""
    r = self.submit(body, key, headers)
    assert r.status == 202, r
    return r.json["data"]


def _get_job(self, job_id, key=None):
    return self.request("GET", "/v1/ula/jobs/%s" % job_id,
                        headers=self.auth(key))


def _job(self, job_id, key=None):
    r = self.get_job(job_id, key)
    assert r.status == 200, r
    return r.json["data"]


def _list_jobs(self, key=None, **query):
    q = urllib.parse.urlencode(query)
    return self.request("GET", "/v1/ula/jobs" + ("?" + q if q else ""),
                        headers=self.auth(key))


def _cancel_job(self, job_id, key=None):
    return self.request("DELETE", "/v1/ula/jobs/%s" % job_id,
                        headers=self.auth(key))


def _wait_job(self, job_id, statuses=FINISHED, key=None, timeout=60):
    """Polls the job until its status is one of `statuses`; returns it."""
    last = {}

    def check():
        last["job"] = self.job(job_id, key)
        return last["job"]["status"] in statuses

    if not wait_for(check, timeout, 0.1):
        raise AssertionError("job %s never reached %s: %r"
                             % (job_id, statuses, last.get("job")))
    return last["job"]


def _open_events(self, job_id, key=None, last_event_id=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                      timeout=timeout)
    h = self.auth(key)
    h["Accept"] = "text/event-stream"
    if last_event_id is not None:
        h["Last-Event-ID"] = str(last_event_id)
    conn.request("GET", "/v1/ula/jobs/%s/events" % job_id, headers=h)
    return EventStream(conn, conn.getresponse())


def _webhook_secret(self, key=None):
    r = self.request("GET", "/v1/ula/webhooks/secret",
                     headers=self.auth(key))
    assert r.status == 200, r
    return r.json["data"]["secret"]


Server.kill = _kill
Server.restart = _restart
Server.new_key = _new_key
Server.key_id = _key_id
Server.submit = _submit
Server.submit_job = _submit_job
Server.get_job = _get_job
Server.job = _job
Server.list_jobs = _list_jobs
Server.cancel_job = _cancel_job
Server.wait_job = _wait_job
Server.open_events = _open_events
Server.webhook_secret = _webhook_secret


class ReplayServerTest(unittest.TestCase):
    """One server per class, with the replay model (a copy of a small
    ffmpeg-made MP4 after `replay_delay_ms`) next to the local one.
    `job_settings` etc. are passed to jobs_config."""
    replay_delay_ms = 0
    replay_concurrency = 100
    job_settings = None
    provider_settings = None
    limit_settings = None
    webhook_settings = None
    extra_config = {}

    @classmethod
    def setUpClass(cls):
        cls.media_dir = tempfile.mkdtemp(prefix="vgmedia-")
        cls.mp4 = make_mp4(os.path.join(cls.media_dir, "replay.mp4"))
        cls.server = Server(config=jobs_config(
            cls.mp4, cls.replay_delay_ms, cls.replay_concurrency,
            jobs=cls.job_settings, providers=cls.provider_settings,
            limits=cls.limit_settings, webhooks=cls.webhook_settings,
            **cls.extra_config))
        try:
            cls.server.start()
        except Exception:
            shutil.rmtree(cls.media_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.cleanup()
        finally:
            shutil.rmtree(cls.media_dir, ignore_errors=True)
