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
SOURCE = os.environ.get("VG_SOURCE_DIR", "../..")


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
        self.env.update(env or {})
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
    """A test case with one server per class."""
    config = None
    env = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(config=cls.config, env=cls.env).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
