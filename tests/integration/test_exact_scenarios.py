"""Every scenario file that states an exact upstream request
(tests/fakes/scenarios/*/exact_*.json) is checked for equality: the
request its "spec" describes is run through vidgate against a fake
serving that scenario, and the request the adapter sends must match the
file exactly (the fake compares bodies deeply, wildcards aside), or the
fake answers 500 and reports the difference.

The files are documentation of each provider's wire format; this test
keeps them from drifting from the adapters. A new exact_*.json is picked
up by the glob.
"""
import base64
import glob
import json
import os
import shutil
import sys
import tempfile
import unittest

from media import make_image
from vg import Server, make_mp4

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "fakes"))
from fake_provider import SCENARIOS, FakeProvider  # noqa: E402

KEY_ENV = "VG_TEST_EXACT_KEY"
BASE_PATHS = {"novita": "", "google": "/v1beta", "byteplus": "/api/v3",
              "fal": "", "replicate": "/v1", "openai": ""}
BUILTIN_KEY_ENVS = ("NOVITA_API_KEY", "GEMINI_API_KEY", "ARK_API_KEY",
                    "FAL_KEY", "REPLICATE_API_TOKEN",
                    "GOOGLE_APPLICATION_CREDENTIALS")
REQUEST_FIELDS = ("prompt", "resolution", "aspect_ratio", "duration", "seed",
                  "generate_audio", "camera_fixed", "service_tier", "fps")


def exact_files():
    return sorted(glob.glob(os.path.join(SCENARIOS, "*", "exact_*.json")))


def model_name(path):
    return "exact-" + os.path.relpath(path, SCENARIOS)[:-5].replace("/", "-")


class ExactScenarios(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="vg-exact-")
        video = make_mp4(os.path.join(cls.dir, "v.mp4"), size="1280x720",
                         audio=True)
        cls.png = make_image("png")
        cls.fakes = {p: FakeProvider(video=video).start()
                     for p in BASE_PATHS}
        providers, models = {}, []
        for name, fake in cls.fakes.items():
            providers["x-" + name] = {
                "type": name, "base_url": fake.url + BASE_PATHS[name],
                "api_key_env": KEY_ENV, "poll_interval_ms": 100,
                "poll_max_interval_ms": 200,
                "allow_private_addresses": True}
        for path in exact_files():
            with open(path) as f:
                doc = json.load(f)
            provider = os.path.basename(os.path.dirname(path))
            models.append({
                "name": model_name(path), "description": "exact scenario",
                "providers": [{"provider": "x-" + provider,
                               "model": doc["spec"]["model"]}],
                "modalities": ["t2v", "i2v"],
                "resolutions": ["480P", "720P", "1080P"],
                "aspect_ratios": ["16:9", "9:16", "1:1"],
                "durations": {"min": 4, "max": 12}, "fps": [24],
                "audio": True,
                "price": {"per_second": {"480P": 1, "720P": 1,
                                         "1080P": 1}}})
        env = {k: "" for k in BUILTIN_KEY_ENVS}
        env[KEY_ENV] = "test-key"
        try:
            cls.server = Server(config={
                "limits": {"requests_per_minute": 0},
                "providers": providers, "models": models}, env=env).start()
        except Exception:
            for fake in cls.fakes.values():
                fake.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.cleanup()
        finally:
            for fake in cls.fakes.values():
                fake.stop()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def test_there_is_an_exact_file_per_provider(self):
        have = {os.path.basename(os.path.dirname(p)) for p in exact_files()}
        self.assertEqual(have, set(BASE_PATHS))

    def test_every_exact_file_is_what_the_adapter_sends(self):
        for path in exact_files():
            name = os.path.relpath(path, SCENARIOS)
            with self.subTest(scenario=name):
                self.check(path)

    def check(self, path):
        with open(path) as f:
            doc = json.load(f)
        provider = os.path.basename(os.path.dirname(path))
        fake = self.fakes[provider]
        fake.reset()
        fake.load(path)
        spec = doc["spec"]
        body = {k: spec[k] for k in REQUEST_FIELDS if k in spec}
        body["model"] = model_name(path)
        if "image" in spec:
            body["files"] = ["data:image/png;base64," +
                             base64.b64encode(self.png).decode()]
        job = self.server.submit_job(body)
        done = self.server.wait_job(job["id"], timeout=60)
        # The fake's report names the first difference, if any.
        fake.assert_clean(timeout=10)
        self.assertEqual(done["status"], "succeeded", done)
        submits = [e for e in fake.report()["log"]
                   if e["method"] == "POST" and ("json" in e or "form" in e)]
        self.assertEqual(len(submits), 1, submits)


if __name__ == "__main__":
    unittest.main()
