"""Reference images for providers that fetch them by URL
("image_delivery": "url"): the provider gets a short-lived signed vidgate
link instead of the bytes, the link serves the image while the job runs,
and it stops working when the job ends or its signature is altered."""
import base64
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

from vg import Server, make_mp4, request_body, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fakes"))
from fake_provider import FakeProvider  # noqa: E402

TASK = "cgt-20261126-img"


def png_bytes(path):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=64x48", "-frames:v", "1", path],
                   check=True, timeout=60)
    with open(path, "rb") as f:
        return f.read()


def scenario(running_polls):
    poll = {"method": "GET",
            "path": "/api/v3/contents/generations/tasks/" + TASK}
    return {"name": "byteplus by url", "exchanges": [
        {"request": {"method": "POST",
                     "path": "/api/v3/contents/generations/tasks",
                     "json": "*"},
         "response": {"status": 200, "json": {"id": TASK}}},
        {"request": poll, "times": running_polls,
         "response": {"status": 200,
                      "json": {"id": TASK, "status": "running"}}},
        {"request": poll,
         "response": {"status": 200, "json": {
             "id": TASK, "status": "succeeded",
             "content": {"video_url": "$BASE/out/v.mp4"}}}},
        {"request": {"method": "GET", "path": "/out/v.mp4"},
         "response": {"status": 200, "file": "$VIDEO"}}]}


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, None, b""


class ImagesByUrl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="vgimg-")
        cls.mp4 = make_mp4(os.path.join(cls.dir, "v.mp4"))
        cls.png = png_bytes(os.path.join(cls.dir, "i.png"))
        cls.fake = FakeProvider(scenario(20), video=cls.mp4)
        cls.fake.start()
        config = {
            "limits": {"requests_per_minute": 0},
            "providers": {"byteplus": {
                "base_url": cls.fake.url + "/api/v3",
                "api_key_env": "VG_TEST_ARK_KEY", "poll_interval_ms": 100,
                "poll_max_interval_ms": 100, "image_delivery": "url",
                "allow_private_addresses": True}},
            "models": [{
                "name": "m-i2v", "description": "test",
                "providers": [{"provider": "byteplus",
                               "model": "seedance-1-0-pro-250528"}],
                "modalities": ["t2v", "i2v"], "resolutions": ["480P"],
                "aspect_ratios": ["16:9"], "durations": {"min": 5, "max": 5},
                "fps": [24], "audio": False,
                "price": {"per_second": {"480P": 1}}}]}
        cls.server = Server(config=config,
                            env={"VG_TEST_ARK_KEY": "test-key"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        cls.fake.stop()

    def test_provider_gets_a_signed_link_that_serves_the_image(self):
        body = request_body(
            model="m-i2v", resolution="480P", duration=5,
            aspect_ratio="16:9", generate_audio=False,
            files=["data:image/png;base64,"
                   + base64.b64encode(self.png).decode()])
        r = self.server.generate(body, headers={"Prefer": "respond-async"})
        self.assertEqual(r.status, 202, r.body)
        job_id = r.json["data"]["id"]
        wait_for(lambda: self.fake.requests("POST"))
        sent = self.fake.requests("POST")[0]["json"]
        image = [c for c in sent["content"] if c["type"] == "image_url"]
        self.assertEqual(len(image), 1)
        url = image[0]["image_url"]["url"]
        self.assertTrue(url.startswith(
            "http://127.0.0.1:%d/v1/files/uploads/%s-0?expires="
            % (self.server.port, job_id)), url)
        # While the job runs, the link serves the exact bytes.
        status, ctype, data = fetch(url)
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "image/png")
        self.assertEqual(data, self.png)
        # An altered signature is refused.
        self.assertEqual(fetch(url[:-4] + "0000")[0], 403)
        job = self.server.wait_job(job_id)
        self.assertEqual(job["status"], "succeeded", job)
        # The job has ended: its image is gone.
        self.assertEqual(fetch(url)[0], 404)
        self.fake.assert_clean(timeout=10)


if __name__ == "__main__":
    unittest.main()
