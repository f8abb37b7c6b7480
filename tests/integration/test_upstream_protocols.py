"""Upstream provider protocols end to end: vidgate's adapters and upstream
engine against the scripted fake providers of tests/fakes.

One class per provider. Each class starts one vidgate with two instances
of that provider: the main one, and "<provider>-spare" on a second fake
that the success test stops to prove the video was copied into vidgate's
own storage. Both fakes live for the class and are reset before each
test, which loads the scenario it needs: the shipped ones in
tests/fakes/scenarios/<provider>/, and the it_* ones written for these
tests (exact request bodies as the adapters send them, Novita's model
families, strings where numbers are expected, fal's and OpenAI's expired
result URLs). Polls run every 100-300 ms, so a job takes well under a
second unless its scenario makes it wait.

Every test ends with the fake's report clean: no request it did not
expect, and every exchange of the scenario served.
"""
import base64
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from media import make_image
from vg import Server, ffprobe, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "fakes"))
from fake_provider import FakeProvider, scenario_path  # noqa: E402

PROMPT = "a red fox running through snow"
KEY_ENV = "VG_TEST_UPSTREAM_KEY"
UNSET_KEY_ENV = "VG_TEST_UPSTREAM_KEY_UNSET"
# The built-in providers' own key variables: emptied, so a key in the
# environment of whoever runs the tests cannot turn one on.
BUILTIN_KEY_ENVS = ("NOVITA_API_KEY", "GEMINI_API_KEY", "ARK_API_KEY",
                    "FAL_KEY", "REPLICATE_API_TOKEN",
                    "GOOGLE_APPLICATION_CREDENTIALS")
BUILTINS = ("novita", "google", "byteplus", "fal", "replicate")

PER_SECOND = {"480P": 1, "720P": 2, "1080P": 4}
AUDIO_FACTOR = 2

MEDIA = {}


def setUpModule():
    """The MP4 the fakes serve (video and an audio track) and a PNG."""
    MEDIA["dir"] = tempfile.mkdtemp(prefix="vg-upstream-")
    MEDIA["video"] = os.path.join(MEDIA["dir"], "upstream.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=320x240:rate=24",
                    "-f", "lavfi", "-i", "sine=f=440", "-t", "1",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", MEDIA["video"]],
                   check=True, timeout=120)
    with open(MEDIA["video"], "rb") as f:
        MEDIA["video_bytes"] = f.read()
    MEDIA["png"] = make_image("png")


def tearDownModule():
    shutil.rmtree(MEDIA.get("dir", ""), ignore_errors=True)


def png_data_url():
    return "data:image/png;base64," + base64.b64encode(
        MEDIA["png"]).decode()


def model(name, routes, modalities=("t2v", "i2v"),
          resolutions=("480P", "720P", "1080P"),
          aspect_ratios=("16:9", "9:16"), durations=None, audio=True):
    """A catalog entry served by `routes` ([{provider, model,
    i2v_model?}]), priced PER_SECOND (x AUDIO_FACTOR with sound)."""
    entry = {"name": name, "description": "upstream protocol test model",
             "providers": routes, "modalities": list(modalities),
             "resolutions": list(resolutions),
             "aspect_ratios": list(aspect_ratios),
             "durations": durations or {"min": 4, "max": 12},
             "fps": [24], "audio": audio,
             "price": {"per_second": {r: PER_SECOND[r]
                                      for r in resolutions}}}
    if audio:
        entry["price"]["audio_factor"] = AUDIO_FACTOR
    return entry


def price(body):
    credits = PER_SECOND[body["resolution"]] * body["duration"]
    return credits * AUDIO_FACTOR if body["generate_audio"] else credits


class UpstreamCase(unittest.TestCase):
    """One vidgate for the class with the provider `provider` (protocol
    and instance name) on `fake`, and `<provider>-spare` on `spare`."""
    provider = None
    base_path = ""         # appended to a fake's URL to make base_url
    models = ()            # the first one is the class's main model
    request = {}           # the class's usual request (overrides)

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeProvider(video=MEDIA["video"]).start()
        cls.spare = FakeProvider(video=MEDIA["video"]).start()
        try:
            cls.server = Server(config=cls.config(),
                                env=cls.environment()).start()
        except Exception:
            cls.fake.stop()
            cls.spare.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.cleanup()
        finally:
            cls.fake.stop()
            cls.spare.stop()

    @classmethod
    def environment(cls):
        env = {k: "" for k in BUILTIN_KEY_ENVS}
        env[KEY_ENV] = "test-key"
        return env

    @classmethod
    def instance(cls, fake):
        return {"type": cls.provider, "base_url": fake.url + cls.base_path,
                "api_key_env": KEY_ENV, "poll_interval_ms": 100,
                "poll_max_interval_ms": 300,
                # Failure scenarios must not open the circuit for the
                # tests after them.
                "breaker_failures": 1000,
                "allow_private_addresses": True}

    @classmethod
    def spare_model(cls):
        spare = copy.deepcopy(cls.models[0])
        spare["name"] += "-spare"
        for route in spare["providers"]:
            route["provider"] = cls.provider + "-spare"
        return spare

    @classmethod
    def config(cls):
        return {"limits": {"requests_per_minute": 0,
                           "unfinished_jobs_per_key": 0},
                "shutdown_grace_s": 1,
                "providers": {cls.provider: cls.instance(cls.fake),
                              cls.provider + "-spare":
                                  cls.instance(cls.spare)},
                "models": list(copy.deepcopy(cls.models)) +
                [cls.spare_model()]}

    def setUp(self):
        if self.provider is None:
            self.skipTest("base class")
        self.fake.reset()
        self.spare.reset()
        self.key = self.server.new_key("upstream", 1000)

    def tearDown(self):
        # Every job of the test has ended: the engine holds none.
        providers = self.server.health().json["providers"]
        for name in (self.provider, self.provider + "-spare"):
            self.assertEqual(providers[name]["jobs"], 0, providers[name])

    # -- helpers

    def body(self, **overrides):
        body = {"model": self.models[0]["name"], "prompt": PROMPT,
                "resolution": "720P", "aspect_ratio": "16:9",
                "duration": 5, "seed": 42, "generate_audio": False,
                "camera_fixed": False, "service_tier": "default"}
        body.update(self.request)
        body.update(overrides)
        return body

    def load(self, name, fake=None):
        (fake or self.fake).load(scenario_path(self.provider + "/" + name))

    def credits(self):
        return self.server.credits(self.key)

    def run_job(self, body, timeout=30):
        """Submits body as a job and waits for its end."""
        job = self.server.submit_job(body, self.key)
        return self.server.wait_job(job["id"], key=self.key,
                                    timeout=timeout)

    def assertClean(self, fake=None):
        (fake or self.fake).assert_clean(timeout=10)

    def log(self, fake=None):
        return (fake or self.fake).report()["log"]

    def submits(self, fake=None):
        """The log entries of submits (the POSTs with a JSON or multipart
        body)."""
        return [e for e in self.log(fake)
                if e["method"] == "POST" and ("json" in e or "form" in e)]

    def assertSucceeded(self, job):
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["progress"], 100, job)
        self.assertIsNone(job["error"], job)
        return job["data"]

    def assertFailed(self, job, status, code):
        self.assertEqual(job["status"], "failed", job)
        self.assertEqual(job["error"]["code"], code, job)
        self.assertEqual(job["error"]["status"], status, job)
        self.assertIsNone(job["data"], job)
        return job["error"]

    def assertErrorResponse(self, r, status, code):
        self.assertEqual(r.status, status, r)
        doc = r.json
        self.assertEqual(doc["api_details"]["api_status"], "failure", doc)
        self.assertEqual(doc["data"], {}, doc)
        self.assertEqual(doc["error"]["code"], code, doc)
        self.assertEqual(doc["error"]["status"], status, doc)
        return doc["error"]

    def video(self, data):
        """GETs the result's own URL; (bytes, ffprobe info)."""
        self.assertEqual(len(data["videos"]), 1, data)
        url = data["videos"][0]["url"]
        self.assertTrue(url.startswith("http://127.0.0.1:%d/v1/files/"
                                       % self.server.port), url)
        r = self.server.fetch_url(url)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "video/mp4")
        fd, path = tempfile.mkstemp(suffix=".mp4")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(r.body)
            info = ffprobe(path)
        finally:
            os.unlink(path)
        return r.body, info

    def streams(self, info, kind):
        return [s for s in info["streams"] if s["codec_type"] == kind]

    def error_log_lines(self, since=0):
        """The messages of the server's error-level log lines, from byte
        `since` of its log on."""
        out = []
        for line in self.server.log()[since:].splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("level") == "error":
                out.append(doc.get("msg", ""))
        return out

    def check_exact_submit(self, scenario, body, expected, headers):
        """Runs body against `scenario` (whose submit matches the exact
        body); asserts the logged submit body is exactly `expected` and
        carries `headers`, and the job succeeds. Returns the job's data."""
        self.load(scenario)
        job = self.run_job(body)
        data = self.assertSucceeded(job)
        self.assertClean()
        submits = self.submits()
        self.assertEqual(len(submits), 1, submits)
        self.assertEqual(submits[0]["json"], expected)
        for name, value in headers.items():
            self.assertEqual(submits[0]["headers"].get(name.lower()), value,
                             submits[0]["headers"])
        self.assertEqual(submits[0]["headers"].get("content-type"),
                         "application/json")
        return data


class ProviderRules:
    """The rules every provider class checks. A class names its
    scenarios; None skips a rule the provider has no scenario for."""
    success = "success"
    malformed_poll = "malformed_poll"
    slow_poll = "slow_poll"
    rate_limited = "rate_limited"
    redirect_download = "redirect_download"
    expired_url = "expired_url"
    rejected = "rejected"
    failed = "failed"
    no_balance = ("no_balance",)
    # Reasons the provider's answers give, which the client must see.
    rejected_reason = None
    failed_reason = None

    def test_success_is_copied_charged_once_and_outlives_the_provider(self):
        s = self.server
        body = self.body(model=self.models[0]["name"] + "-spare",
                         generate_audio=True)
        self.load(self.success, self.spare)
        before = self.credits()
        job = self.run_job(body)
        data = self.assertSucceeded(job)
        self.assertEqual(job["provider"], self.provider + "-spare")
        self.assertEqual(job["attempts"], 1, job)
        # queued -> running -> succeeded -> download, exactly as scripted,
        # with one submit.
        self.assertClean(self.spare)
        self.assertEqual(len(self.submits(self.spare)), 1)
        self.assertEqual(data["provider"], self.provider + "-spare")
        self.assertAlmostEqual(self.credits(), before - price(body), places=3)
        # The provider goes away: vidgate serves its own copy.
        self.spare.stop()
        self.spare.reset()
        got, info = self.video(data)
        self.assertEqual(got, MEDIA["video_bytes"])
        self.assertEqual(len(self.streams(info, "video")), 1)
        # generate_audio true on an audio-capable model keeps the sound.
        self.assertEqual(len(self.streams(info, "audio")), 1)
        self.assertEqual(self.log(self.spare), [])
        # Charged once: nothing more later, and the ledger agrees.
        self.assertAlmostEqual(self.credits(), before - price(body), places=3)
        p = s.cli("ledger", "check", check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_generate_audio_false_drops_the_providers_audio_track(self):
        body = self.body(generate_audio=False)
        self.load(self.success)
        before = self.credits()
        data = self.assertSucceeded(self.run_job(body))
        self.assertClean()
        got, info = self.video(data)
        self.assertEqual(len(self.streams(info, "video")), 1)
        self.assertEqual(self.streams(info, "audio"), [],
                         "the stored MP4 kept the provider's audio")
        self.assertAlmostEqual(self.credits(), before - price(body), places=3)

    def test_malformed_poll_answer_is_retried_and_the_job_succeeds(self):
        self.load(self.malformed_poll)
        data = self.assertSucceeded(self.run_job(self.body()))
        self.assertClean()
        self.video(data)

    def test_slow_poll_answer_is_awaited_without_a_second_poll(self):
        self.load(self.slow_poll)
        data = self.assertSucceeded(self.run_job(self.body()))
        self.assertClean()
        with open(scenario_path(self.provider + "/" + self.slow_poll)) as f:
            exchanges = json.load(f)["exchanges"]
        delayed = [i for i, ex in enumerate(exchanges)
                   if ex["response"].get("delay_ms")]
        self.assertEqual(len(delayed), 1, exchanges)
        delay = exchanges[delayed[0]]["response"]["delay_ms"] / 1000
        log = self.log()
        slow = [i for i, e in enumerate(log) if e["index"] == delayed[0]]
        self.assertEqual(len(slow), 1, log)
        slow = slow[0]
        self.assertLess(slow + 1, len(log), log)
        # Nothing else reached the provider while it took its time.
        self.assertGreaterEqual(log[slow + 1]["time"] - log[slow]["time"],
                                delay, [(e["method"], e["path"], e["time"])
                                        for e in log])
        self.video(data)

    def test_rate_limited_submit_waits_retry_after_then_succeeds(self):
        self.load(self.rate_limited)
        before = self.credits()
        body = self.body()
        data = self.assertSucceeded(self.run_job(body))
        self.assertClean()
        submits = [e for e in self.log() if e["method"] == "POST"]
        self.assertEqual(len(submits), 2, submits)
        self.assertEqual(submits[0]["status"], 429)
        self.assertIn(submits[1]["status"], (200, 201))
        with open(scenario_path(self.provider + "/" +
                                self.rate_limited)) as f:
            first = json.load(f)["exchanges"][0]["response"]
        retry_after = float(first["headers"]["Retry-After"])
        self.assertGreaterEqual(submits[1]["time"] - submits[0]["time"],
                                retry_after)
        self.assertEqual(submits[0].get("json", submits[0].get("form")),
                         submits[1].get("json", submits[1].get("form")))
        self.video(data)
        self.assertAlmostEqual(self.credits(), before - price(body), places=3)

    def test_redirected_download_is_followed(self):
        if self.redirect_download is None:
            self.skipTest("no redirect scenario")
        self.load(self.redirect_download)
        data = self.assertSucceeded(self.run_job(self.body()))
        self.assertClean()
        redirects = [e for e in self.log() if e["status"] == 302]
        self.assertEqual(len(redirects), 1, self.log())
        self.video(data)

    def test_expired_result_url_fails_502_and_refunds(self):
        if self.expired_url is None:
            self.skipTest("no expired URL scenario")
        self.load(self.expired_url)
        before = self.credits()
        job = self.run_job(self.body())
        self.assertFailed(job, 502, "upstream_expired")
        self.assertClean()
        expired = [e for e in self.log() if e.get("expired")]
        self.assertEqual(len(expired), 1, "one download, no retries")
        self.assertIn(expired[0]["status"], (403, 404))
        self.assertEqual(self.credits(), before)

    def test_rejected_submit_is_400_with_the_reason_and_charges_nothing(self):
        self.load(self.rejected)
        before = self.credits()
        r = self.server.generate(self.body(), self.key)
        error = self.assertErrorResponse(r, 400, "upstream_rejected")
        self.assertIn(self.rejected_reason, error["message"])
        self.assertIn(self.provider, error["message"])
        self.assertClean()
        self.assertEqual(len(self.submits()), 1, "a rejection is final")
        self.assertEqual(self.credits(), before)

    def test_no_balance_is_503_refunded_and_logged_for_the_operator(self):
        if not self.no_balance:
            self.skipTest("no out-of-balance scenario")
        for scenario in self.no_balance:
            with self.subTest(scenario=scenario):
                self.fake.reset()
                self.load(scenario)
                before = self.credits()
                mark = len(self.server.log())
                r = self.server.generate(self.body(), self.key)
                self.assertErrorResponse(r, 503, "upstream_no_balance")
                self.assertClean()
                self.assertEqual(self.credits(), before)
                lines = self.error_log_lines(mark)
                self.assertTrue(
                    [m for m in lines if "provider " + self.provider in m
                     and "balance" in m], lines)

    def test_failed_task_is_502_with_the_reason_and_refunded(self):
        self.load(self.failed)
        before = self.credits()
        job = self.run_job(self.body())
        error = self.assertFailed(job, 502, "upstream_failed")
        self.assertIn(self.failed_reason, error["message"])
        self.assertClean()
        self.assertEqual(self.credits(), before)

    def test_healthz_shows_the_provider_configured(self):
        r = self.server.health()
        self.assertEqual(r.status, 200, r)
        providers = r.json["providers"]
        for name in (self.provider, self.provider + "-spare"):
            self.assertEqual(providers[name]["protocol"], self.provider)
            self.assertIs(providers[name]["configured"], True, providers)
            self.assertEqual(providers[name]["circuit"], "closed")
        for name in BUILTINS:
            if name != self.provider:
                self.assertIs(providers[name]["configured"], False,
                              providers)


# ---- Novita --------------------------------------------------------------

class Novita(ProviderRules, UpstreamCase):
    provider = "novita"
    models = (
        model("m-novita-seedance15",
              [{"provider": "novita", "model": "seedance-v1.5-pro-t2v",
                "i2v_model": "seedance-v1.5-pro-i2v"}],
              resolutions=("480P", "720P")),
        model("m-novita-seedance1",
              [{"provider": "novita", "model": "seedance-v1-pro-t2v",
                "i2v_model": "seedance-v1-pro-i2v"}],
              durations=[5, 10], audio=False),
        model("m-novita-kling",
              [{"provider": "novita", "model": "kling-v2.1-t2v-master",
                "i2v_model": "kling-v2.1-i2v-master"}],
              resolutions=("1080P",), aspect_ratios=("16:9", "9:16", "1:1"),
              durations=[5, 10], audio=False),
        model("m-novita-hailuo",
              [{"provider": "novita", "model": "minimax-hailuo-02"}],
              resolutions=("720P", "1080P"), durations=[6, 10],
              audio=False),
        model("m-novita-wan",
              [{"provider": "novita", "model": "wan-2.5-t2v-preview"}],
              modalities=("t2v",), durations=[5, 10]),
    )
    rejected_reason = "duration: must be between 4 and 12"
    failed_reason = ("video generation failed: the inference service "
                     "returned an error, please retry later")
    headers = {"Authorization": "Bearer test-key"}

    def test_exact_t2v_body_seedance_v15(self):
        self.check_exact_submit(
            "it_exact_t2v_seedance15", self.body(),
            {"prompt": PROMPT, "ratio": "16:9", "resolution": "720p",
             "duration": 5, "fps": 24, "seed": 42, "camera_fixed": False,
             "generate_audio": False, "service_tier": "default",
             "watermark": False}, self.headers)

    def test_exact_t2v_body_seedance_v1(self):
        self.check_exact_submit(
            "it_exact_t2v_seedance1", self.body(model="m-novita-seedance1"),
            {"prompt": PROMPT, "resolution": "720p", "aspect_ratio": "16:9",
             "duration": 5, "camera_fixed": False, "seed": 42},
            self.headers)

    def test_exact_t2v_body_kling(self):
        self.check_exact_submit(
            "it_exact_t2v_kling",
            self.body(model="m-novita-kling", resolution="1080P"),
            {"prompt": PROMPT, "duration": "5", "aspect_ratio": "16:9"},
            self.headers)

    def test_exact_t2v_body_hailuo(self):
        self.check_exact_submit(
            "it_exact_t2v_hailuo",
            self.body(model="m-novita-hailuo", duration=6),
            {"prompt": PROMPT, "duration": 6, "resolution": "768P"},
            self.headers)

    def test_exact_t2v_body_wan(self):
        data = self.check_exact_submit(
            "it_exact_t2v_wan", self.body(model="m-novita-wan"),
            {"input": {"prompt": PROMPT},
             "parameters": {"size": "1280*720", "duration": 5,
                            "audio": False, "seed": 42}},
            self.headers)
        _, info = self.video(data)
        self.assertEqual(self.streams(info, "audio"), [])

    def test_i2v_sends_the_image_inline_as_a_data_url(self):
        self.check_exact_submit(
            "it_exact_i2v_seedance15", self.body(files=[png_data_url()]),
            {"prompt": PROMPT, "image": png_data_url(), "ratio": "16:9",
             "resolution": "720p", "duration": 5, "fps": 24, "seed": 42,
             "camera_fixed": False, "generate_audio": False,
             "service_tier": "default", "watermark": False}, self.headers)
        self.assertEqual(self.submits()[0]["path"],
                         "/v3/async/seedance-v1.5-pro-i2v")

    def test_strings_where_numbers_are_expected_are_read(self):
        # progress_percent "40", extra.seed "42", video_url_ttl "3600".
        self.load("it_strings_as_numbers")
        job = self.server.submit_job(self.body(seed=7), self.key)
        seen = wait_for(lambda: self.server.job(job["id"], self.key)
                        ["progress"] == 40, 20, 0.02)
        self.assertTrue(seen, "the job never showed 40 %")
        job = self.server.wait_job(job["id"], key=self.key, timeout=30)
        self.assertSucceeded(job)
        self.assertClean()
        # The seed the provider says it used ("42"), not the one asked.
        self.assertEqual(job["seed"], 42, job)


# ---- Google (Gemini API, Veo) ----------------------------------------------

class Google(ProviderRules, UpstreamCase):
    provider = "google"
    base_path = "/v1beta"
    models = (
        model("m-google-veo31",
              [{"provider": "google", "model": "veo-3.1-generate-preview"}],
              resolutions=("720P", "1080P"), durations=[4, 6, 8]),
    )
    request = {"duration": 8}
    redirect_download = "success"  # Google's downloads answer with a 302
    no_balance = ()
    rejected_reason = ("Your use case is currently not supported. Please "
                       "refer to Gemini API documentation for current model "
                       "offering.")
    failed_reason = ("Video generation failed due to an internal error. "
                     "Please try again later.")
    filter_reason = ("Unable to generate videos because the prompt may "
                     "violate our policies. Please try rephrasing the "
                     "prompt. Support codes: 58061214")

    def test_exact_t2v_body(self):
        self.check_exact_submit(
            "exact_t2v", self.body(),
            {"instances": [{"prompt": PROMPT}],
             "parameters": {"sampleCount": 1, "durationSeconds": 8,
                            "aspectRatio": "16:9", "resolution": "720p"}},
            {"x-goog-api-key": "test-key"})
        self.assertIsNone(self.submits()[0]["headers"].get("authorization"))
        for entry in self.log():
            self.assertNotIn("key", entry["query"], entry)

    def test_i2v_sends_the_image_inline_as_base64(self):
        self.check_exact_submit(
            "exact_i2v", self.body(files=[png_data_url()]),
            {"instances": [{"prompt": PROMPT, "image": {
                "bytesBase64Encoded": base64.b64encode(
                    MEDIA["png"]).decode(),
                "mimeType": "image/png"}}],
             "parameters": {"sampleCount": 1, "durationSeconds": 8,
                            "aspectRatio": "16:9", "resolution": "720p"}},
            {"x-goog-api-key": "test-key"})

    def test_download_sends_the_key_and_follows_the_redirect(self):
        self.load("success")
        data = self.assertSucceeded(self.run_job(self.body()))
        self.assertClean()
        download = [e for e in self.log() if ":download" in e["path"]]
        self.assertEqual(len(download), 1, self.log())
        self.assertEqual(download[0]["headers"].get("x-goog-api-key"),
                         "test-key")
        self.assertEqual(download[0]["status"], 302)
        self.video(data)

    def test_download_redirect_to_another_host_gets_no_key(self):
        # Google's download answers 302 to storage on another host. The
        # adapter keeps the key to the API's own origin (google.c
        # key_goes_to); following the redirect must not hand it to the
        # other host either.
        with FakeProvider(video=MEDIA["video"]) as storage:
            storage.load({"name": "google/it_storage", "exchanges": [{
                "name": "download from storage (another host)",
                "request": {"method": "GET",
                            "path": "/google-cdn/veo/x.mp4"},
                "response": {"file": "$VIDEO"}}]})
            with open(scenario_path("google/success")) as f:
                scenario = json.load(f)
            del scenario["exchanges"][-1]  # the download on the same host
            scenario["exchanges"][-1]["response"]["redirect"] = (
                storage.url + "/google-cdn/veo/x.mp4")
            self.fake.load(scenario)
            job = self.run_job(self.body())
            stored = storage.report()["log"]
            self.assertEqual(len(stored), 1, stored)
            self.assertNotIn("x-goog-api-key", stored[0]["headers"],
                             "the API key went to the redirect's host")
            self.assertSucceeded(job)
            storage.assert_clean(timeout=5)
            self.assertClean()

    def test_safety_filter_fails_the_job_400_with_the_reason_and_refunds(self):
        self.load("safety_filtered")
        before = self.credits()
        r = self.server.generate(self.body(), self.key)
        error = self.assertErrorResponse(r, 400, "content_filtered")
        self.assertIn(self.filter_reason, error["message"])
        self.assertClean()
        self.assertEqual(self.credits(), before)
        job = self.server.job(r.header("X-Vidgate-Job"), self.key)
        self.assertFailed(job, 400, "content_filtered")


# ---- BytePlus ModelArk -----------------------------------------------------

class BytePlus(ProviderRules, UpstreamCase):
    provider = "byteplus"
    base_path = "/api/v3"
    models = (
        model("m-byteplus-seedance1",
              [{"provider": "byteplus", "model": "seedance-1-0-pro-250528"}],
              durations=[5, 10]),
    )
    no_balance = ("no_balance", "no_balance_402")
    rejected_reason = ("The parameter `duration` specified in the request "
                       "is not valid: must be 5 or 10.")
    failed_reason = ("The service encountered an unexpected internal error. "
                     "Request id: 021749720398000fdbd2a8c")
    headers = {"Authorization": "Bearer test-key"}
    expected_t2v = {"model": "seedance-1-0-pro-250528",
                    "content": [{"type": "text", "text": PROMPT}],
                    "resolution": "720p", "ratio": "16:9", "duration": 5,
                    "seed": 42, "camera_fixed": False, "watermark": False,
                    "generate_audio": False, "service_tier": "default"}

    def test_exact_t2v_body(self):
        data = self.check_exact_submit("it_exact_t2v", self.body(),
                                       self.expected_t2v, self.headers)
        # The provider's token count is the usage.
        self.assertEqual(data["usage"]["completion_tokens"], 108900, data)
        self.assertEqual(data["usage"]["total_tokens"], 108900, data)

    def test_i2v_sends_one_image_inline_without_a_role(self):
        # As the AI SDK's ByteDance provider sends it: a role only comes
        # with a last frame.
        expected = copy.deepcopy(self.expected_t2v)
        expected["content"].append({"type": "image_url",
                                    "image_url": {"url": png_data_url()}})
        self.check_exact_submit("it_exact_i2v",
                                self.body(files=[png_data_url()]), expected,
                                self.headers)

    def test_expired_task_fails_502_and_refunds(self):
        self.load("task_expired")
        before = self.credits()
        job = self.run_job(self.body())
        self.assertFailed(job, 502, "upstream_expired")
        self.assertClean()
        self.assertEqual(self.credits(), before)


# ---- fal queue -------------------------------------------------------------

class Fal(ProviderRules, UpstreamCase):
    provider = "fal"
    models = (
        model("m-fal-seedance1",
              [{"provider": "fal",
                "model": "fal-ai/bytedance/seedance/v1/pro/text-to-video",
                "i2v_model":
                    "fal-ai/bytedance/seedance/v1/pro/image-to-video"}],
              durations=[5, 10]),
        model("m-fal-veo31",
              [{"provider": "fal", "model": "fal-ai/veo3.1",
                "i2v_model": "fal-ai/veo3.1/image-to-video"}],
              durations=[8]),
        model("m-fal-veo3",
              [{"provider": "fal", "model": "fal-ai/veo3",
                "i2v_model": "fal-ai/veo3/image-to-video"}],
              durations=[8]),
    )
    expired_url = "it_expired_url"
    rejected_reason = "Input should be '5' or '10'"
    failed_reason = "Request timed out"
    headers = {"Authorization": "Key test-key"}
    # Seedance 1.0's schema on fal: camera_fixed, no generate_audio.
    expected_t2v = {"prompt": PROMPT, "aspect_ratio": "16:9",
                    "duration": "5", "resolution": "720p", "seed": 42,
                    "camera_fixed": False}

    def test_exact_t2v_body(self):
        self.check_exact_submit("it_exact_t2v", self.body(),
                                self.expected_t2v, self.headers)
        # The status, result and video URLs are the ones fal returned.
        paths = [e["path"] for e in self.log()]
        self.assertTrue(all(p.startswith(("/fal-ai/", "/fal-queue/",
                                          "/fal-media/")) for p in paths),
                        paths)

    def test_i2v_sends_the_image_inline_as_a_data_url(self):
        self.check_exact_submit(
            "it_exact_i2v", self.body(files=[png_data_url()]),
            dict(self.expected_t2v, image_url=png_data_url()), self.headers)
        self.assertEqual(self.submits()[0]["path"],
                         "/fal-ai/bytedance/seedance/v1/pro/image-to-video")

    def test_veo31_last_frame_goes_to_the_first_last_frame_endpoint(self):
        # fal's Veo 3.1 image-to-video has no end_image_url (fal would
        # drop it): two images go to first-last-frame-to-video.
        with open(scenario_path("fal/success")) as f:
            scenario = json.load(f)
        submit = scenario["exchanges"][0]["request"]
        submit["path"] = "/fal-ai/veo3.1/first-last-frame-to-video"
        submit["json"] = {
            "prompt": PROMPT, "aspect_ratio": "16:9", "duration": "8s",
            "resolution": "720p", "seed": 42, "generate_audio": True,
            "first_frame_url": "<data-url>", "last_frame_url": "<data-url>"}
        self.fake.load(scenario)
        self.assertSucceeded(self.run_job(self.body(
            model="m-fal-veo31", duration=8, generate_audio=True,
            files=[png_data_url(), png_data_url()])))
        self.assertClean()

    def test_last_frame_is_refused_where_the_model_has_none(self):
        before = self.credits()
        r = self.server.generate(self.body(
            model="m-fal-veo3", duration=8,
            files=[png_data_url(), png_data_url()]), self.key)
        err = self.assertErrorResponse(r, 400, "unsupported_parameter")
        self.assertIn("last frame", err["message"])
        self.assertEqual(self.log(), [])
        self.assertEqual(self.credits(), before)


# ---- Replicate -------------------------------------------------------------

class Replicate(ProviderRules, UpstreamCase):
    provider = "replicate"
    base_path = "/v1"
    models = (
        model("m-replicate-seedance1",
              [{"provider": "replicate",
                "model": "bytedance/seedance-1-pro"}],
              durations=[5, 10]),
    )
    rejected_reason = ("- input.duration: duration must be one of the "
                       "following: 5, 10")
    failed_reason = "Prediction failed: CUDA error: out of memory"
    headers = {"Authorization": "Bearer test-key"}
    # Seedance 1.0 Pro's schema on Replicate: fps and camera_fixed, no
    # generate_audio.
    expected_input = {"prompt": PROMPT, "aspect_ratio": "16:9",
                      "duration": 5, "resolution": "720p", "fps": 24,
                      "seed": 42, "camera_fixed": False}

    def test_exact_t2v_body(self):
        self.check_exact_submit("it_exact_t2v", self.body(),
                                {"input": self.expected_input}, self.headers)
        self.assertNotIn("prefer", self.submits()[0]["headers"])

    def test_i2v_sends_the_image_inline_as_a_data_url(self):
        self.check_exact_submit(
            "it_exact_i2v", self.body(files=[png_data_url()]),
            {"input": dict(self.expected_input, image=png_data_url())},
            self.headers)


# ---- OpenAI-compatible -----------------------------------------------------

class OpenAI(ProviderRules, UpstreamCase):
    provider = "openai"
    models = (
        model("m-openai-sora2",
              [{"provider": "openai", "model": "sora-2"}],
              modalities=("t2v",), resolutions=("720P",),
              durations=[4, 8, 12]),
        model("m-openai-sora2-i2v",
              [{"provider": "openai", "model": "sora-2"}],
              resolutions=("720P",), durations=[4, 8, 12]),
        # On an instance that deletes the server's copy once stored.
        model("m-openai-clean",
              [{"provider": "openai-clean", "model": "sora-2"}],
              resolutions=("720P",), durations=[4, 8, 12]),
    )
    request = {"duration": 4}
    expired_url = "it_expired_url"
    rejected_reason = ("Invalid value: '5'. Supported values are: '4', '8', "
                       "and '12'.")
    failed_reason = "Video generation failed. Please try again."

    @classmethod
    def config(cls):
        config = super().config()
        clean = cls.instance(cls.spare)
        clean["delete_after_store"] = True
        config["providers"]["openai-clean"] = clean
        return config

    def form_submits(self, fake=None):
        return [e for e in self.log(fake)
                if e["method"] == "POST" and "form" in e]

    def test_exact_t2v_body(self):
        # A multipart form, as the official openai client sends it.
        self.load("exact_t2v")
        self.assertSucceeded(self.run_job(self.body()))
        self.assertClean()
        submits = self.form_submits()
        self.assertEqual(len(submits), 1, self.log())
        self.assertEqual(submits[0]["form"],
                         {"model": "sora-2", "prompt": PROMPT,
                          "seconds": "4", "size": "1280x720"})
        self.assertEqual(submits[0]["files"], {})
        headers = submits[0]["headers"]
        self.assertEqual(headers.get("authorization"), "Bearer test-key")
        self.assertTrue(headers["content-type"].startswith(
            "multipart/form-data; boundary="), headers)
        content = [e for e in self.log() if e["path"].endswith("/content")]
        self.assertEqual(content[0]["headers"].get("authorization"),
                         "Bearer test-key")
        # Not configured to delete: the server's copy is left alone.
        time.sleep(0.3)
        self.assertEqual([e for e in self.log() if e["method"] == "DELETE"],
                         [])

    def test_i2v_sends_the_image_as_input_reference(self):
        self.load("success")
        data = self.assertSucceeded(self.run_job(
            self.body(model="m-openai-sora2-i2v", files=[png_data_url()])))
        self.assertClean()
        submits = self.form_submits()
        self.assertEqual(len(submits), 1)
        ref = submits[0]["files"]["input_reference"]
        self.assertEqual(ref["content_type"], "image/png")
        self.assertEqual(ref["filename"], "reference.png")
        self.assertEqual(ref["sha256"],
                         hashlib.sha256(MEDIA["png"]).hexdigest())
        self.assertEqual(submits[0]["form"]["seconds"], "4")
        self.assertEqual(data["provider"], "openai")

    def test_two_images_are_refused_before_anything_is_sent(self):
        before = self.credits()
        r = self.server.generate(
            self.body(model="m-openai-sora2-i2v",
                      files=[png_data_url(), png_data_url()]), self.key)
        self.assertErrorResponse(r, 400, "unsupported_parameter")
        self.assertEqual(self.log(), [])
        self.assertEqual(self.credits(), before)

    def test_stored_video_is_deleted_upstream_where_configured(self):
        self.load("it_delete_after_store", self.spare)
        job = self.run_job(self.body(model="m-openai-clean",
                                     files=[png_data_url()],
                                     generate_audio=True))
        data = self.assertSucceeded(job)
        # Every exchange served, the DELETE last, after vidgate stored it:
        # the video is vidgate's own copy.
        self.assertClean(self.spare)
        log = self.log(self.spare)
        self.assertEqual(log[-1]["method"], "DELETE", log)
        got, _ = self.video(data)
        self.assertEqual(got, MEDIA["video_bytes"])

    def test_poll_after_header_spaces_the_polls(self):
        # Each poll answer says openai-poll-after-ms: 200 (the configured
        # interval is 100 ms).
        self.load("success")
        self.assertSucceeded(self.run_job(self.body()))
        self.assertClean()
        polls = [e for e in self.log() if e["method"] == "GET"
                 and not e["path"].endswith("/content")]
        self.assertEqual(len(polls), 3, polls)
        for a, b in zip(polls, polls[1:]):
            self.assertGreaterEqual(b["time"] - a["time"], 0.2)


# ---- /healthz ------------------------------------------------------------

class Healthz(unittest.TestCase):
    """Which providers have a key: configured true/false per instance."""

    def test_healthz_providers_say_which_are_configured(self):
        env = {k: "" for k in BUILTIN_KEY_ENVS}
        env[KEY_ENV] = "test-key"
        server = Server(config={"providers": {
            "novita": {"api_key_env": KEY_ENV},
            "google": {"api_key_env": UNSET_KEY_ENV},
            "gpu-box": {"type": "openai", "base_url": "http://127.0.0.1:9",
                        "api_key_env": KEY_ENV},
            "gpu-box-2": {"type": "openai",
                          "base_url": "http://127.0.0.1:9",
                          "api_key_env": UNSET_KEY_ENV}}}, env=env)
        server.env.pop(UNSET_KEY_ENV, None)
        server.start()
        try:
            r = server.health()
            self.assertEqual(r.status, 200, r)
            providers = r.json["providers"]
            configured = {name: p["configured"]
                          for name, p in providers.items()}
            self.assertEqual(configured, {
                "novita": True, "google": False, "byteplus": False,
                "fal": False, "replicate": False, "google-vertex": False,
                "gpu-box": True,
                "gpu-box-2": False})
            self.assertEqual(providers["gpu-box"]["protocol"], "openai")
            for p in providers.values():
                self.assertEqual(set(p), {"protocol", "configured",
                                          "circuit", "consecutive_failures",
                                          "jobs"})
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main()
