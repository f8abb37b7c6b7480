"""End to end: the seed's request through an alias to the local renderer,
real MP4 files checked with ffprobe, signed links with Range support."""
import base64
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from catalog import CONFIG
from vg import Server, ServerTest, check_video, multipart, request_body

SEED_EXAMPLE = {
    "model": "seedance-v1.5-pro-t2v",
    "prompt": "a cat drinking milk in a cozy kitchen",
    "resolution": "720P",
    "aspect_ratio": "16:9",
    "duration": 5,
    "generate_audio": True,
    "camera_fixed": False,
    "service_tier": "default",
    "fps": 24,
    "seed": -1,
}


def make_png(width=64, height=48):
    path = tempfile.mktemp(suffix=".png")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=%dx%d" % (width, height), "-frames:v",
                    "1", path], check=True, timeout=60)
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data


class Generate(ServerTest):
    config = CONFIG

    def test_seed_example_through_an_alias(self):
        r = self.server.generate(SEED_EXAMPLE)
        self.assertEqual(r.status, 200, r)
        doc = r.json
        self.assertEqual(set(doc), {"api_details", "data", "error"})
        self.assertEqual(doc["api_details"]["api_status"], "success")
        self.assertEqual(doc["error"], {})
        data = doc["data"]
        self.assertEqual(set(data), {
            "id", "created", "text", "finish_reason", "provider", "model",
            "usage", "latency_ms", "images", "videos", "resolution",
            "audios"})
        self.assertEqual(len(data["id"]), 36)
        self.assertLessEqual(abs(data["created"] - time.time()), 120)
        self.assertEqual(data["text"], "Generated video for prompt: "
                         + SEED_EXAMPLE["prompt"])
        self.assertEqual(data["finish_reason"], "stop")
        self.assertEqual(data["provider"], "local")
        self.assertEqual(data["model"], "seedance-v1.5-pro-t2v")
        self.assertEqual(set(data["usage"]), {
            "prompt_tokens", "completion_tokens", "total_tokens"})
        self.assertEqual(data["usage"]["total_tokens"],
                         data["usage"]["prompt_tokens"]
                         + data["usage"]["completion_tokens"])
        self.assertIsInstance(data["latency_ms"], float)
        self.assertEqual(data["images"], [])
        self.assertEqual(data["audios"], None)
        self.assertEqual(data["resolution"], "1280*720")
        self.assertEqual(len(data["videos"]), 1)
        self.assertEqual(data["videos"][0]["type"], "mp4")
        check_video(self, self.server, r, SEED_EXAMPLE)

    def test_shapes_fps_and_audio_match_the_request(self):
        cases = [
            ("480P", "9:16", 24, 4, False, 480, 854),
            ("480P", "21:9", 30, 4, True, 1120, 480),
            ("720P", "4:3", 25, 4, False, 960, 720),
            ("720P", "3:4", 24, 4, True, 720, 960),
            ("1080P", "1:1", 24, 4, False, 1080, 1080),
        ]
        for res, ar, fps, dur, audio, w, h in cases:
            with self.subTest(res=res, ar=ar, fps=fps, audio=audio):
                body = request_body(resolution=res, aspect_ratio=ar,
                                    fps=fps, duration=dur,
                                    generate_audio=audio)
                r = self.server.generate(body)
                self.assertEqual(r.json["data"]["resolution"],
                                 "%d*%d" % (w, h))
                check_video(self, self.server, r, body)

    def test_given_seed_is_used_and_reported(self):
        body = request_body(seed=12345)
        r = self.server.generate(body)
        check_video(self, self.server, r, body)
        self.assertEqual(r.header("X-Vidgate-Seed"), "12345")

    def test_random_seed_is_reported(self):
        body = request_body(seed=-1)
        r = self.server.generate(body)
        check_video(self, self.server, r, body)
        self.assertTrue(r.header("X-Vidgate-Seed").isdigit())

    def test_same_seed_gives_the_same_video(self):
        first = self.server.generate(request_body(seed=7))
        second = self.server.generate(request_body(seed=7))
        other = self.server.generate(request_body(seed=8))
        files = [self.server.fetch_url(r.json["data"]["videos"][0]["url"])
                 .body for r in (first, second, other)]
        self.assertEqual(files[0], files[1])
        self.assertNotEqual(files[0], files[2])

    def test_multipart_request_with_an_image(self):
        fields = {k: (str(v).lower() if isinstance(v, bool) else str(v))
                  for k, v in request_body(aspect_ratio="16:9").items()}
        body, ctype = multipart(fields, [("files", "ref.bin", make_png(),
                                          "application/octet-stream")])
        h = self.server.auth()
        h["Content-Type"] = ctype
        r = self.server.request("POST", "/v1/ula/generate-video", body, h)
        check_video(self, self.server, r, fields)

    def test_json_data_url_image(self):
        url = "data:image/png;base64," + base64.b64encode(
            make_png()).decode()
        body = request_body(files=[url])
        r = self.server.generate(body)
        check_video(self, self.server, r, body)

    def test_range_requests(self):
        body = request_body()
        r = self.server.generate(body)
        check_video(self, self.server, r, body)
        url = r.json["data"]["videos"][0]["url"]
        whole = self.server.fetch_url(url)
        size = len(whole.body)
        self.assertEqual(whole.header("Accept-Ranges"), "bytes")
        part = self.server.fetch_url(url, {"Range": "bytes=0-99"})
        self.assertEqual(part.status, 206)
        self.assertEqual(part.body, whole.body[:100])
        self.assertEqual(part.header("Content-Range"),
                         "bytes 0-99/%d" % size)
        tail = self.server.fetch_url(url, {"Range": "bytes=-50"})
        self.assertEqual(tail.status, 206)
        self.assertEqual(tail.body, whole.body[-50:])
        rest = self.server.fetch_url(url, {"Range": "bytes=%d-" % (size - 10)})
        self.assertEqual(rest.status, 206)
        self.assertEqual(rest.body, whole.body[-10:])
        bad = self.server.fetch_url(url, {"Range": "bytes=%d-" % size})
        self.assertEqual(bad.status, 416)
        self.assertEqual(bad.header("Content-Range"), "bytes */%d" % size)

    def test_video_links_need_a_valid_signature(self):
        body = request_body()
        r = self.server.generate(body)
        check_video(self, self.server, r, body)
        url = r.json["data"]["videos"][0]["url"]
        self.assertEqual(self.server.fetch_url(url).status, 200)
        tampered = url[:-4] + ("0000" if url[-4:] != "0000" else "1111")
        self.assertEqual(self.server.fetch_url(tampered).status, 403)
        unsigned = url.split("?")[0]
        self.assertEqual(self.server.fetch_url(unsigned).status, 403)
        other = url.replace(r.json["data"]["id"],
                            "00000000-0000-4000-8000-000000000000")
        self.assertEqual(self.server.fetch_url(other).status, 403)


class Restart(unittest.TestCase):
    def test_finished_videos_survive_a_restart(self):
        s = Server(config=CONFIG).start()
        try:
            body = request_body()
            r = s.generate(body)
            check_video(self, s, r, body)
            url = r.json["data"]["videos"][0]["url"]
            s.stop()
            s.start()
            got = s.fetch_url(url)
            self.assertEqual(got.status, 200)
            self.assertGreater(len(got.body), 1000)
        finally:
            s.cleanup()


class ExpiringLinks(unittest.TestCase):
    def test_expired_link_is_403(self):
        s = Server(config=dict(CONFIG, url_lifetime_s=1)).start()
        try:
            body = request_body()
            r = s.generate(body)
            check_video(self, s, r, body)
            url = r.json["data"]["videos"][0]["url"]
            time.sleep(2.2)
            got = s.fetch_url(url)
            self.assertEqual(got.status, 403)
            self.assertEqual(got.json["error"]["code"], "link_expired")
        finally:
            s.cleanup()


class ConfiguredBackends(unittest.TestCase):
    """The store and blob sections put the database and the videos where
    the operator says, and a backend this build lacks stops the start."""

    def test_database_and_videos_live_where_configured(self):
        place = tempfile.mkdtemp(prefix="vgtest-backends-")
        db = os.path.join(place, "state", "jobs.db")
        os.makedirs(os.path.dirname(db))
        videos = os.path.join(place, "blobs")
        cfg = dict(CONFIG, store={"backend": "sqlite", "path": db},
                   blob={"backend": "fs", "dir": videos})
        # The file's store, even in the postgres.* run (an empty
        # VIDGATE_DATABASE_URL counts as unset).
        s = Server(config=cfg, env={"VIDGATE_DATABASE_URL": ""}).start()
        try:
            body = request_body()
            r = s.generate(body)
            check_video(self, s, r, body)
            job_id = r.json["data"]["id"]
            self.assertTrue(os.path.exists(db))
            self.assertFalse(os.path.exists(os.path.join(s.data, "vidgate.db")))
            stored = os.path.join(videos, "videos", job_id + ".mp4")
            self.assertGreater(os.path.getsize(stored), 1000)
            self.assertFalse(os.path.exists(os.path.join(s.data, "videos")))
            url = r.json["data"]["videos"][0]["url"]
            s.stop()
            s.start()
            got = s.fetch_url(url)
            self.assertEqual(got.status, 200)
            with open(stored, "rb") as f:
                self.assertEqual(got.body, f.read())
        finally:
            s.cleanup()
            shutil.rmtree(place, ignore_errors=True)

    def test_unknown_backend_is_refused_at_start(self):
        for section, name in (({"store": {"backend": "mysql"}}, "store"),
                              ({"blob": {"backend": "ftp"}}, "blob")):
            s = Server(config=dict(CONFIG, **section))
            try:
                p = s.cli("serve", "--listen", "127.0.0.1:%d" % s.port,
                          check=False)
                self.assertNotEqual(p.returncode, 0, p)
                self.assertIn("is not a %s backend of this build" % name,
                              p.stderr)
                self.assertNotIn("Sanitizer", p.stderr)
                self.assertFalse(os.path.exists(
                    os.path.join(s.data, "vidgate.db")))
            finally:
                shutil.rmtree(s.dir, ignore_errors=True)

if __name__ == "__main__":
    unittest.main()
