"""Upstream resilience: failover along a model's routes, no failover on a
rejection, the per-provider circuit breakers (/healthz, 503 before any
charge, "available" in the models list), cancellation upstream (BytePlus
DELETE, Replicate POST .../cancel, fal PUT cancel_url, Novita local only),
restarts (SIGKILL while polling resumes the SAME task; SIGKILL mid-submit
fails the job as "interrupted" and never submits twice; SIGTERM parks
polling jobs and exits at once), Retry-After on polls and job_timeout_s.

Every provider is a fake (tests/fakes/fake_provider.py) on 127.0.0.1,
scripted with scenario dicts built here, so each test says exactly what
the provider answers. Each test starts its own vidgate and fakes.
"""
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "fakes"))

from fake_provider import FakeProvider, scenario_path  # noqa: E402
from vg import Server, make_mp4, request_body, wait_for  # noqa: E402

KEY_ENV = {"VG_TEST_KEY": "test-key"}
NOVITA_MODEL = "seedance-v1.5-pro-t2v"
NOVITA_SUBMIT = "/v3/async/" + NOVITA_MODEL
NOVITA_POLL = "/v3/async/task-result"
AUTH = {"Authorization": "Bearer test-key"}

# 720P, 5 s, no audio at 2 credits/s: 10 credits.
BODY = request_body(model="m", resolution="720P", aspect_ratio="16:9",
                    duration=5)
PRICE = 10.0
START = 100.0


def closed_port():
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet_errors(handle_error):
    """A fake's handle_error that stays quiet about clients (a killed
    vidgate) dropping their connections."""
    def handle(request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            handle_error(request, client_address)
    return handle


# ---- Novita scenarios ------------------------------------------------------

def nv_submit(task, status=200, delay_ms=0, times=1, doc=None,
              headers=None):
    resp = {"status": status,
            "json": doc if doc is not None else (
                {"task_id": task} if status == 200 else
                {"code": status, "reason": "SERVICE_UNAVAILABLE",
                 "message": "service temporarily unavailable",
                 "metadata": {}})}
    if delay_ms:
        resp["delay_ms"] = delay_ms
    if headers:
        resp["headers"] = headers
    return {"name": "submit %s (%d)" % (task, status),
            "request": {"method": "POST", "path": NOVITA_SUBMIT,
                        "headers": dict(AUTH), "json": "*"},
            "response": resp, "times": times}


NV_STATUS = {"queued": "TASK_STATUS_QUEUED",
             "running": "TASK_STATUS_PROCESSING",
             "succeeded": "TASK_STATUS_SUCCEED",
             "failed": "TASK_STATUS_FAILED"}


def nv_task_doc(task, state, progress=0):
    videos = []
    if state == "succeeded":
        videos = [{"video_url": "$BASE/out/%s.mp4?X-Amz-Signature=abc"
                   % task, "video_url_ttl": "3600", "video_type": "mp4"}]
    return {"extra": {"seed": "42"},
            "task": {"task_id": task, "task_type": "TXT_TO_VIDEO",
                     "status": NV_STATUS[state], "reason": "",
                     "eta": 0, "progress_percent": str(progress)},
            "images": [], "videos": videos, "audios": []}


def nv_poll(task, state, progress=0, times=1, repeat=False, status=200,
            headers=None):
    resp = {"status": status}
    if status == 200:
        resp["json"] = nv_task_doc(task, state, progress)
    else:
        resp["json"] = {"code": status, "reason": "TOO_MANY_REQUESTS",
                        "message": "slow down", "metadata": {}}
    if headers:
        resp["headers"] = headers
    ex = {"name": "poll %s: %s" % (task, state if status == 200 else status),
          "request": {"method": "GET", "path": NOVITA_POLL,
                      "query": {"task_id": task}, "headers": dict(AUTH),
                      "body_absent": True},
          "response": resp, "times": times}
    if repeat:
        ex["repeat"] = True
    return ex


def nv_finish(task):
    """The succeeded poll and the download of the result."""
    return [nv_poll(task, "succeeded", 100),
            {"name": "download %s" % task,
             "request": {"method": "GET", "path": "/out/%s.mp4" % task,
                         "headers": {"Authorization": None},
                         "body_absent": True},
             "response": {"status": 200, "file": "$VIDEO"}}]


def nv_success(task, running=1, delay_ms=0):
    return {"name": "success " + task, "provider": "novita",
            "exchanges": [nv_submit(task, delay_ms=delay_ms),
                          nv_poll(task, "running", 40, times=running)]
            + nv_finish(task)}


def nv_fail_submits(status, times, name="failing submits"):
    return {"name": name, "provider": "novita",
            "exchanges": [nv_submit("none", status=status, times=times)]}


# ---- the config ------------------------------------------------------------

def provider(url, **extra):
    p = {"base_url": url, "api_key_env": "VG_TEST_KEY",
         "poll_interval_ms": 100, "poll_max_interval_ms": 300,
         "allow_private_addresses": True, "breaker_failures": 2,
         "breaker_open_s": 2}
    p.update(extra)
    return p


def model(name, routes, price=2):
    """routes: [(provider instance, its model id)]."""
    return {"name": name, "description": "test",
            "providers": [{"provider": p, "model": m} for p, m in routes],
            "modalities": ["t2v"], "resolutions": ["720P"],
            "aspect_ratios": ["16:9"], "durations": {"min": 4, "max": 12},
            "fps": [24], "audio": True,
            "price": {"per_second": {"720P": price}}}


def config(providers, models, **top):
    cfg = {"limits": {"requests_per_minute": 0,
                      "unfinished_jobs_per_key": 0},
           "shutdown_grace_s": 10,
           "providers": providers, "models": models}
    cfg.update(top)
    return cfg


class UpstreamTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.media = tempfile.mkdtemp(prefix="vgmedia-")
        cls.mp4 = make_mp4(os.path.join(cls.media, "upstream.mp4"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.media, ignore_errors=True)

    def fake(self, scenarios=None, generic=None, job_ms=200,
             poll_delay_ms=0):
        f = FakeProvider(scenarios, video=self.mp4, generic=generic,
                         job_ms=job_ms, poll_delay_ms=poll_delay_ms)
        f.httpd.handle_error = quiet_errors(f.httpd.handle_error)
        f.start()
        self.addCleanup(f.stop)
        return f

    def server(self, providers, models, **top):
        s = Server(config=config(providers, models, **top), env=KEY_ENV)
        s.start()
        self.addCleanup(s.cleanup)
        return s

    # -- observations

    def health(self, s, name):
        r = s.health()
        self.assertEqual(r.status, 200, r)
        return r.json["providers"][name]

    def wait_circuit(self, s, name, state, timeout=20):
        got = wait_for(lambda: self.health(s, name)["circuit"] == state,
                       timeout, 0.05)
        self.assertTrue(got, "%s never %s: %r" % (name, state,
                                                  self.health(s, name)))

    def available(self, s, name):
        """The model's "available" in the models list, checked to agree
        with the vendor's older list and its price list (all three are
        served from renderings cached until availability changes).

        The three are separate requests, so a circuit whose cool-down ends
        between them is seen flipping: read them again. A rendering left
        stale would keep disagreeing, and fails."""
        for _ in range(5):
            seen = []
            for path, key in (("/v1/ula/models", "name"),
                              ("/v1/developer/get-all-models", "model_name"),
                              ("/v1/developer/get-model-pricing",
                               "model_name")):
                r = s.request("GET", path, headers=s.auth())
                self.assertEqual(r.status, 200, r)
                found = [m["available"] for m in r.json["data"]["models"]
                         if m[key] == name]
                self.assertEqual(len(found), 1, (path, name, r.json))
                seen.append(found[0])
            if len(set(seen)) == 1:
                return seen[0]
            time.sleep(0.05)
        self.fail("the three model lists disagree on %s: %r" % (name, seen))

    def n_jobs(self, s):
        r = s.list_jobs(limit=100)
        self.assertEqual(r.status, 200, r)
        return len(r.json["data"]["jobs"])

    @staticmethod
    def submits(fake, path=NOVITA_SUBMIT):
        return fake.requests("POST", path)

    @staticmethod
    def polls(fake, task, path=NOVITA_POLL):
        return [e for e in fake.requests("GET", path)
                if e["query"].get("task_id") == task]

    def wait_requests(self, what, n, timeout=30):
        """Waits until what() (a list) has at least n entries."""
        got = wait_for(lambda: len(what()) >= n, timeout, 0.02)
        self.assertTrue(got, "saw %d of %d requests: %r"
                        % (len(what()), n, what()[-3:]))
        return what()

    def assertCredits(self, s, expected):
        self.assertAlmostEqual(s.credits(), expected, places=3)

    def assertSucceeded(self, s, job_id, provider_name):
        job = s.wait_job(job_id, timeout=60)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["provider"], provider_name, job)
        got = s.fetch_url(job["data"]["videos"][0]["url"])
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.header("Content-Type"), "video/mp4")
        return job


# ---- 1, 2: failover, and none on a rejection -------------------------------

class Failover(UpstreamTest):
    def failover(self, first):
        """A job of model m (routes novita, then novita-b) whose first
        route fails as `first` (a provider config) goes to novita-b."""
        b = self.fake(nv_success("task-b"))
        s = self.server({"novita": first, "novita-b": dict(
            provider(b.url), type="novita")},
            [model("m", [("novita", NOVITA_MODEL),
                         ("novita-b", NOVITA_MODEL)])])
        r = s.generate(BODY)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["provider"], "novita-b", r)
        job = self.assertSucceeded(s, r.header("X-Vidgate-Job"), "novita-b")
        self.assertEqual(len(self.submits(b)), 1)
        b.assert_clean()
        self.assertCredits(s, START - PRICE)
        a = self.health(s, "novita")
        self.assertEqual((a["circuit"], a["consecutive_failures"]),
                         ("closed", 1), a)
        return s, job

    def test_server_error_fails_over(self):
        a = self.fake(nv_fail_submits(500, 1))
        self.failover(provider(a.url))
        self.assertEqual(len(self.submits(a)), 1)
        a.assert_clean()

    def test_connection_refused_fails_over(self):
        self.failover(provider("http://127.0.0.1:%d" % closed_port()))

    def test_timeout_fails_over(self):
        a = self.fake({"exchanges": [nv_submit("slow-a", delay_ms=3000)]})
        started = time.time()
        self.failover(provider(a.url, request_timeout_s=1))
        self.assertLess(time.time() - started, 2.9,
                        "vidgate waited for the slow answer")
        self.assertEqual(len(self.submits(a)), 1)

    def test_rejection_does_not_fail_over(self):
        a = self.fake({"exchanges": [nv_submit(
            "x", status=400, doc={"code": 400,
                                  "reason": "INVALID_REQUEST_BODY",
                                  "message": "prompt: flagged words",
                                  "metadata": {}})]})
        b = self.fake(nv_success("never"))
        s = self.server({"novita": provider(a.url), "novita-b": dict(
            provider(b.url), type="novita")},
            [model("m", [("novita", NOVITA_MODEL),
                         ("novita-b", NOVITA_MODEL)])])
        r = s.generate(BODY)
        self.assertEqual(r.status, 400, r)
        self.assertIn("prompt: flagged words", r.body.decode(), r)
        job = s.job(r.header("X-Vidgate-Job"))
        self.assertEqual(job["status"], "failed", job)
        self.assertEqual(job["error"]["code"], "upstream_rejected", job)
        self.assertIn("prompt: flagged words", job["error"]["message"])
        a.assert_clean()
        self.assertEqual(b.report()["log"], [])
        self.assertCredits(s, START)
        # A rejection is not the provider failing.
        h = self.health(s, "novita")
        self.assertEqual((h["circuit"], h["consecutive_failures"]),
                         ("closed", 0), h)


# ---- 3: circuit breakers ---------------------------------------------------

class CircuitBreaker(UpstreamTest):
    def two_routes(self, a_scenarios=None, **a_settings):
        """Model m: novita (fake A: scripted tracks first, then any number
        of successful jobs) then novita-b (fake B: any number of jobs)."""
        a = self.fake(a_scenarios, generic="novita")
        b = self.fake(generic="novita")
        s = self.server({"novita": provider(a.url, **a_settings),
                         "novita-b": dict(provider(b.url), type="novita")},
                        [model("m", [("novita", NOVITA_MODEL),
                                     ("novita-b", NOVITA_MODEL)])])
        return s, a, b

    def run_job(self, s, provider_name):
        r = s.generate(BODY)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["provider"], provider_name, r)
        return r

    def fail_over(self, s, b):
        """Submits a job that A fails: returns once B has its submit (A's
        failure is recorded by then), checking the job succeeds at B."""
        n = len(self.submits(b))
        job = s.submit_job(BODY)
        self.wait_requests(lambda: self.submits(b), n + 1)
        self.to_check.append(job["id"])

    def check_jobs(self, s, provider_name):
        for job_id in self.to_check:
            self.assertSucceeded(s, job_id, provider_name)
        self.to_check = []

    def setUp(self):
        self.to_check = []

    def test_open_half_open_close_and_reopen(self):
        s, a, b = self.two_routes(nv_fail_submits(503, 2), breaker_open_s=3)
        self.fail_over(s, b)
        h = self.health(s, "novita")
        self.assertEqual((h["circuit"], h["consecutive_failures"]),
                         ("closed", 1), h)
        self.fail_over(s, b)
        self.assertEqual(self.health(s, "novita")["circuit"], "open")
        self.assertEqual(len(self.submits(a)), 2)
        # Open: the next job does not even try A.
        job = s.submit_job(BODY)
        self.wait_requests(lambda: self.submits(b), 3)
        self.assertEqual(len(self.submits(a)), 2)
        self.assertEqual(self.health(s, "novita")["circuit"], "open")
        # The model is still available through B.
        self.assertTrue(self.available(s, "m"))
        self.assertSucceeded(s, job["id"], "novita-b")
        self.check_jobs(s, "novita-b")
        self.assertEqual(len(self.submits(a)), 2)

        # After breaker_open_s: half-open; a successful probe closes it.
        self.wait_circuit(s, "novita", "half_open")
        self.run_job(s, "novita")
        h = self.health(s, "novita")
        self.assertEqual((h["circuit"], h["consecutive_failures"]),
                         ("closed", 0), h)
        self.assertEqual(len(self.submits(a)), 3)

        # Open it again; then a failed probe reopens it at once.
        a.load(nv_fail_submits(503, 3))
        self.fail_over(s, b)
        self.fail_over(s, b)
        self.assertEqual(self.health(s, "novita")["circuit"], "open")
        self.check_jobs(s, "novita-b")
        self.wait_circuit(s, "novita", "half_open")
        self.fail_over(s, b)  # the probe fails: failover to B
        self.assertEqual(self.health(s, "novita")["circuit"], "open")
        self.check_jobs(s, "novita-b")
        self.assertEqual(len(self.submits(a)), 6)
        a.assert_clean()
        self.assertEqual(b.report()["generic"]["submits"], 6)
        self.assertCredits(s, START - 7 * PRICE)

    def test_half_open_lets_one_probe_through(self):
        s, a, b = self.two_routes(
            [nv_fail_submits(503, 1), nv_success("probe", delay_ms=1500)],
            breaker_failures=1, breaker_open_s=2)
        self.fail_over(s, b)
        self.assertEqual(self.health(s, "novita")["circuit"], "open")
        self.check_jobs(s, "novita-b")
        self.wait_circuit(s, "novita", "half_open")
        probe = s.submit_job(BODY)
        self.wait_requests(lambda: self.submits(a), 2)
        # While the probe is out, other jobs go elsewhere.
        self.run_job(s, "novita-b")
        self.assertEqual(len(self.submits(a)), 2)
        self.assertSucceeded(s, probe["id"], "novita")
        self.assertEqual(self.health(s, "novita")["circuit"], "closed")
        self.run_job(s, "novita")
        a.assert_clean()

    def test_no_provider_is_refused_before_charging(self):
        a = self.fake(nv_fail_submits(503, 2), generic="novita")
        s = self.server(
            {"novita": provider(a.url, breaker_open_s=3),
             # Configured, but its key variable is not set.
             "byteplus": {"base_url": "http://127.0.0.1:9",
                          "api_key_env": "VG_TEST_UNSET_KEY_4f1c"}},
            [model("solo", [("novita", NOVITA_MODEL),
                            ("byteplus", "seedance-1-0-pro-250528")])])
        body = dict(BODY, model="solo")
        self.assertFalse(self.health(s, "byteplus")["configured"])
        self.assertTrue(self.available(s, "solo"))
        for _ in range(2):
            r = s.generate(body)
            self.assertEqual(r.status, 502, r)
            self.assertEqual(r.json["error"]["code"], "upstream_unavailable",
                             r)
        self.assertEqual(self.health(s, "novita")["circuit"], "open")
        self.assertCredits(s, START)
        self.assertEqual(self.n_jobs(s), 2)

        for send in (s.generate, s.submit):
            r = send(body)
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json["error"]["code"], "no_provider", r)
            self.assertIsNone(r.header("X-Vidgate-Job"))
        self.assertCredits(s, START)
        self.assertEqual(self.n_jobs(s), 2)
        self.assertFalse(self.available(s, "solo"))
        self.assertEqual(len(self.submits(a)), 2)

        # Half-open: available again (seen by the models list itself, with
        # nothing else asking about the circuit first), and the probe
        # closes the circuit.
        self.assertTrue(wait_for(lambda: self.available(s, "solo"), 20),
                        "solo never available again")
        self.assertEqual(self.health(s, "novita")["circuit"], "half_open")
        r = s.generate(body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.health(s, "novita")["circuit"], "closed")
        self.assertCredits(s, START - PRICE)


# ---- 4: cancellation upstream ----------------------------------------------

def exchange(name, method, path, response, headers=None, repeat=False,
             times=1, any_json=False):
    req = {"method": method, "path": path}
    if headers:
        req["headers"] = headers
    if any_json:
        req["json"] = "*"
    ex = {"name": name, "request": req, "response": response, "times": times}
    if repeat:
        ex["repeat"] = True
    return ex


BP_TASKS = "/api/v3/contents/generations/tasks"


def byteplus_cancel(task, submit_delay_ms=0, polls=True):
    submit = {"status": 200, "json": {"id": task}}
    if submit_delay_ms:
        submit["delay_ms"] = submit_delay_ms
    ex = [exchange("create task", "POST", BP_TASKS, submit, AUTH,
                   any_json=True)]
    if polls:
        ex.append(exchange("poll: running", "GET", BP_TASKS + "/" + task,
                           {"json": {"id": task, "status": "running",
                                     "model": "seedance-1-0-pro-250528"}},
                           AUTH, repeat=True))
    ex.append(exchange("cancel", "DELETE", BP_TASKS + "/" + task,
                       {"json": {}}, AUTH))
    return {"name": "byteplus cancel", "exchanges": ex}


def replicate_cancel(pid):
    def prediction(status):
        return {"id": pid, "status": status, "output": None, "error": None,
                "model": "bytedance/seedance-1-pro",
                "urls": {"get": "$BASE/v1/predictions/" + pid,
                         "cancel": "$BASE/v1/predictions/%s/cancel" % pid}}
    base = "/v1/predictions/" + pid
    return {"name": "replicate cancel", "exchanges": [
        exchange("create", "POST",
                 "/v1/models/bytedance/seedance-1-pro/predictions",
                 {"status": 201, "json": prediction("starting")}, AUTH,
                 any_json=True),
        exchange("poll: processing", "GET", base,
                 {"json": prediction("processing")}, AUTH, repeat=True),
        exchange("cancel", "POST", base + "/cancel",
                 {"json": prediction("canceled")}, AUTH)]}


def fal_cancel(rid):
    q = "/fal-queue/fal-ai/bytedance/requests/" + rid
    urls = {"response_url": "$BASE" + q,
            "status_url": "$BASE" + q + "/status",
            "cancel_url": "$BASE" + q + "/cancel", "request_id": rid}
    key = {"Authorization": "Key test-key"}
    return {"name": "fal cancel", "exchanges": [
        exchange("submit", "POST",
                 "/fal-ai/bytedance/seedance/v1/pro/text-to-video",
                 {"json": dict(urls, status="IN_QUEUE", queue_position=0)},
                 key, any_json=True),
        exchange("status: IN_PROGRESS", "GET", q + "/status",
                 {"json": dict(urls, status="IN_PROGRESS", logs=None)}, key,
                 repeat=True),
        exchange("PUT cancel_url", "PUT", q + "/cancel",
                 {"status": 202, "json": {"status":
                                          "CANCELLATION_REQUESTED"}},
                 key)]}


class Cancellation(UpstreamTest):
    def one_provider(self, fake_url, type_, model_id):
        return self.server({"up": dict(provider(fake_url), type=type_)},
                           [model("m", [("up", model_id)])])

    def cancel_running(self, s, fake, poll_path, cancel=None):
        """Submits, waits for two polls, cancels; checks the job and the
        refund, that the provider got `cancel` (method, path) and that
        polling stopped."""
        job = s.submit_job(BODY)
        self.assertCredits(s, START - PRICE)
        polls = lambda: fake.requests("GET", poll_path)  # noqa: E731
        self.wait_requests(polls, 2)
        r = s.cancel_job(job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["status"], "cancelled", r)
        if cancel is not None:
            self.wait_requests(lambda: fake.requests(*cancel), 1)
        done = s.job(job["id"])
        self.assertEqual(done["status"], "cancelled", done)
        self.assertEqual(done["error"]["code"], "cancelled", done)
        self.assertCredits(s, START)
        # No poll after the cancel (time is the subject: a few intervals).
        n = len(polls())
        time.sleep(0.6)
        self.assertEqual(len(polls()), n)
        fake.assert_clean()
        self.assertEqual(len([e for e in fake.report()["log"]
                              if e["method"] in ("POST", "PUT", "DELETE")]),
                         2 if cancel else 1)
        self.assertEqual(self.health(s, "up")["jobs"], 0)
        return done

    def test_byteplus_delete(self):
        fake = self.fake(byteplus_cancel("cgt-cancel-1"))
        s = self.one_provider(fake.url + "/api/v3", "byteplus",
                              "seedance-1-0-pro-250528")
        self.cancel_running(s, fake, BP_TASKS + "/cgt-cancel-1",
                            ("DELETE", BP_TASKS + "/cgt-cancel-1"))

    def test_replicate_cancel(self):
        fake = self.fake(replicate_cancel("rcancel1"))
        s = self.one_provider(fake.url + "/v1", "replicate",
                              "bytedance/seedance-1-pro")
        self.cancel_running(s, fake, "/v1/predictions/rcancel1",
                            ("POST", "/v1/predictions/rcancel1/cancel"))

    def test_fal_put_cancel_url(self):
        fake = self.fake(fal_cancel("fal-cancel-1"))
        s = self.one_provider(fake.url, "fal",
                              "fal-ai/bytedance/seedance/v1/pro/"
                              "text-to-video")
        q = "/fal-queue/fal-ai/bytedance/requests/fal-cancel-1"
        self.cancel_running(s, fake, q + "/status", ("PUT", q + "/cancel"))

    def test_novita_cancels_locally(self):
        fake = self.fake({"exchanges": [
            nv_submit("nv-cancel"),
            nv_poll("nv-cancel", "running", 10, repeat=True)]})
        s = self.one_provider(fake.url, "novita", NOVITA_MODEL)
        self.cancel_running(s, fake, NOVITA_POLL)

    def test_openai_cancels_locally_and_says_the_server_keeps_working(self):
        # The Videos API has no cancel (DELETE is for finished videos):
        # the job is refunded, nothing is sent, and the log says so.
        fake = self.fake(scenario_path("openai/cancel"))
        s = self.one_provider(fake.url, "openai", "sora-2")
        self.cancel_running(
            s, fake,
            "/v1/videos/video_68d7512d07848190b3e45da0ecbebcde004da08e1e0678d5")
        self.assertEqual(fake.requests("DELETE"), [])
        self.assertIn("keeps running upstream", s.log())

    def test_cancel_while_submitting_cancels_the_task_it_returns(self):
        fake = self.fake(byteplus_cancel("cgt-cancel-2", submit_delay_ms=1000,
                                         polls=False))
        s = self.one_provider(fake.url + "/api/v3", "byteplus",
                              "seedance-1-0-pro-250528")
        job = s.submit_job(BODY)
        self.wait_requests(lambda: fake.requests("POST"), 1)
        r = s.cancel_job(job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertCredits(s, START)
        # When the submit's answer comes, its task is cancelled, not polled.
        self.wait_requests(lambda: fake.requests("DELETE"), 1)
        fake.assert_clean()
        self.assertEqual(fake.requests("GET"), [])
        self.assertEqual(s.job(job["id"])["status"], "cancelled")
        self.assertEqual(self.health(s, "up")["jobs"], 0)


# ---- 5, 6, 7: restarts -----------------------------------------------------

class Restart(UpstreamTest):
    def novita_server(self, fake):
        return self.server({"novita": provider(fake.url)},
                           [model("m", [("novita", NOVITA_MODEL)])])

    def assertLedgerOk(self, s):
        p = s.cli("ledger", "check", check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_kill_while_polling_resumes_the_same_task(self):
        fake = self.fake(nv_success("resume-me", running=6))
        s = self.novita_server(fake)
        job = s.submit_job(BODY)
        self.wait_requests(lambda: self.polls(fake, "resume-me"), 1)
        s.kill()
        before = len(self.polls(fake, "resume-me"))
        s.restart()
        self.assertCredits(s, START - PRICE)
        done = self.assertSucceeded(s, job["id"], "novita")
        self.assertGreater(len(self.polls(fake, "resume-me")), before)
        self.assertEqual(len(self.submits(fake)), 1)
        fake.assert_clean()
        self.assertIn("polling its task at novita again", s.log())
        self.assertCredits(s, START - PRICE)
        self.assertEqual(done["error"], None)
        self.assertLedgerOk(s)

    def test_kill_mid_submit_fails_interrupted_without_resubmitting(self):
        fake = self.fake({"exchanges": [
            nv_submit("cut-short", delay_ms=3000),
            nv_poll("cut-short", "running", times=0, repeat=True)]})
        s = self.novita_server(fake)
        job = s.submit_job(BODY)
        self.wait_requests(lambda: self.submits(fake), 1)
        s.kill()
        s.restart()
        done = s.wait_job(job["id"], timeout=30)
        self.assertEqual(done["status"], "failed", done)
        self.assertEqual(done["error"]["code"], "interrupted", done)
        self.assertCredits(s, START)
        # Not submitted again, nor polled (nothing to wait for but time).
        time.sleep(0.5)
        self.assertEqual(len(self.submits(fake)), 1)
        self.assertEqual(fake.requests("GET"), [])
        self.assertEqual(self.health(s, "novita")["jobs"], 0)
        self.assertLedgerOk(s)

    def test_sigterm_while_polling_exits_at_once_and_resumes(self):
        # The second poll hangs for 6 s: the job cannot end before that.
        slow = nv_poll("graceful", "running", 50)
        slow["response"]["delay_ms"] = 6000
        # The first poll after the restart takes 3 s, so the job is still
        # running when the test looks (it raced the resumed poll).
        resumed = nv_poll("graceful", "running", 60)
        resumed["response"]["delay_ms"] = 3000
        fake = self.fake({"exchanges": [
            nv_submit("graceful"), nv_poll("graceful", "running", 20), slow,
            resumed] + nv_finish("graceful")})
        s = self.novita_server(fake)
        job = s.submit_job(BODY)
        self.wait_requests(lambda: self.polls(fake, "graceful"), 2)
        started = time.time()
        self.assertEqual(s.stop(), 0)
        self.assertLess(time.time() - started, 4.0,
                        "SIGTERM waited for the upstream job")
        s.restart()
        self.assertEqual(s.job(job["id"])["status"], "running")
        self.assertCredits(s, START - PRICE)
        self.assertSucceeded(s, job["id"], "novita")
        self.assertEqual(len(self.submits(fake)), 1)
        fake.assert_clean()
        self.assertCredits(s, START - PRICE)
        self.assertLedgerOk(s)

    def test_sigterm_mid_submit_records_the_task_then_resumes(self):
        fake = self.fake(nv_success("drained", delay_ms=1000))
        s = self.novita_server(fake)
        job = s.submit_job(BODY)
        self.wait_requests(lambda: self.submits(fake), 1)
        self.assertEqual(s.stop(), 0)
        s.restart()
        done = self.assertSucceeded(s, job["id"], "novita")
        self.assertEqual(done["error"], None)
        self.assertEqual(len(self.submits(fake)), 1)
        fake.assert_clean()
        self.assertCredits(s, START - PRICE)
        self.assertLedgerOk(s)

    def test_kill_after_failover_resumes_at_the_second_provider(self):
        a = self.fake(nv_fail_submits(500, 1))
        b = self.fake(nv_success("at-b", running=6))
        s = self.server({"novita": provider(a.url), "novita-b": dict(
            provider(b.url), type="novita")},
            [model("m", [("novita", NOVITA_MODEL),
                         ("novita-b", NOVITA_MODEL)])])
        job = s.submit_job(BODY)
        self.wait_requests(lambda: self.polls(b, "at-b"), 1)
        s.kill()
        s.restart()
        self.assertSucceeded(s, job["id"], "novita-b")
        self.assertEqual(len(self.submits(a)), 1)
        self.assertEqual(len(self.submits(b)), 1)
        a.assert_clean()
        b.assert_clean()
        self.assertCredits(s, START - PRICE)


# ---- 8: Retry-After on polls, job_timeout_s --------------------------------

class PollingLimits(UpstreamTest):
    def test_retry_after_on_polls_is_honoured(self):
        fake = self.fake({"exchanges": [
            nv_submit("patient"),
            nv_poll("patient", "running", 10),
            nv_poll("patient", "running", status=429,
                    headers={"Retry-After": "1"}),
            nv_poll("patient", "running", status=503,
                    headers={"Retry-After": "1"}),
            nv_poll("patient", "running", 60)] + nv_finish("patient")})
        s = self.server({"novita": provider(fake.url)},
                        [model("m", [("novita", NOVITA_MODEL)])])
        r = s.generate(BODY)
        self.assertEqual(r.status, 200, r)
        fake.assert_clean()
        t = [e["time"] for e in self.polls(fake, "patient")]
        self.assertEqual(len(t), 5)
        # Without Retry-After the interval is 100..300 ms.
        self.assertGreaterEqual(t[2] - t[1], 0.95, t)
        self.assertGreaterEqual(t[3] - t[2], 0.95, t)
        self.assertLess(t[1] - t[0], 0.9, t)
        self.assertCredits(s, START - PRICE)

    def test_job_timeout_fails_and_refunds(self):
        fake = self.fake({"exchanges": [
            nv_submit("forever"),
            nv_poll("forever", "running", 5, repeat=True)]})
        s = self.server({"novita": provider(fake.url, job_timeout_s=1)},
                        [model("m", [("novita", NOVITA_MODEL)])])
        started = time.time()
        r = s.generate(BODY)
        self.assertEqual(r.status, 504, r)
        self.assertEqual(r.json["error"]["code"], "upstream_timeout", r)
        self.assertGreaterEqual(time.time() - started, 0.9)
        job = s.job(r.header("X-Vidgate-Job"))
        self.assertEqual(job["status"], "failed", job)
        self.assertEqual(job["error"]["code"], "upstream_timeout", job)
        self.assertCredits(s, START)
        n = len(self.polls(fake, "forever"))
        time.sleep(0.6)
        self.assertEqual(len(self.polls(fake, "forever")), n)
        fake.assert_clean()

    def test_job_timeout_cancels_the_task_upstream(self):
        fake = self.fake(byteplus_cancel("cgt-slow"))
        s = self.server({"bp": dict(provider(fake.url + "/api/v3",
                                             job_timeout_s=1),
                                    type="byteplus")},
                        [model("m", [("bp", "seedance-1-0-pro-250528")])])
        r = s.generate(BODY)
        self.assertEqual(r.status, 504, r)
        self.assertEqual(r.json["error"]["code"], "upstream_timeout", r)
        self.wait_requests(lambda: fake.requests("DELETE"), 1)
        fake.assert_clean()
        self.assertCredits(s, START)


class DispatchPacing(UpstreamTest):
    """Intake is paced by dispatch (jobs.dispatch_backlog): polls that
    pile up in the engine behind the transfers it has in flight (64 per
    provider) are dispatch falling behind too, though the jobs hold slots
    well under the provider's concurrency, and they hold new submits back
    until the engine gets through them."""
    JOBS = 200
    POLL_DELAY_MS = 2000

    def burst(self, backlog):
        """Submits JOBS async jobs from 10 threads at once to a provider
        whose every poll answers POLL_DELAY_MS late; the slowest submit's
        time, once every job has succeeded and been charged once."""
        fake = self.fake(generic="novita", job_ms=0,
                         poll_delay_ms=self.POLL_DELAY_MS)
        s = self.server({"novita": provider(fake.url)},
                        [model("m", [("novita", NOVITA_MODEL)])],
                        jobs={"dispatch_backlog": backlog})
        key = s.new_key("burst", self.JOBS * PRICE)
        took, ids, lock = [], [], threading.Lock()

        def submit():
            for _ in range(self.JOBS // 10):
                t0 = time.monotonic()
                job = s.submit_job(BODY, key)
                with lock:
                    took.append(time.monotonic() - t0)
                    ids.append(job["id"])

        threads = [threading.Thread(target=submit) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(len(ids), self.JOBS)
        for job_id in ids:
            job = s.wait_job(job_id, key=key, timeout=120)
            self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(len(self.submits(fake)), self.JOBS)
        self.assertAlmostEqual(s.credits(key), 0, places=3)
        return max(took)

    def test_polls_piling_up_in_the_engine_hold_submits(self):
        slowest = self.burst(backlog=20)
        # Held until polls came back (or the 5 s a hold lasts at most).
        self.assertGreater(slowest, self.POLL_DELAY_MS / 2000, slowest)
        self.assertLess(slowest, 5 + 3, slowest)

    def test_without_a_backlog_no_submit_waits(self):
        slowest = self.burst(backlog=0)
        self.assertLess(slowest, self.POLL_DELAY_MS / 2000, slowest)


# ---- the settings of the provider that took the job ------------------------

class FailoverSettings(UpstreamTest):
    def test_failover_job_uses_the_serving_providers_job_timeout(self):
        # A fails the submit; B takes the job but never finishes it. B's
        # job_timeout_s (1 s) must apply, not A's (the default, an hour).
        a = self.fake(nv_fail_submits(500, 1))
        b = self.fake({"exchanges": [
            nv_submit("b-forever"),
            nv_poll("b-forever", "running", 5, repeat=True)]})
        s = self.server({"novita": provider(a.url),
                         "novita-b": dict(provider(b.url), type="novita",
                                          job_timeout_s=1)},
                        [model("m", [("novita", NOVITA_MODEL),
                                     ("novita-b", NOVITA_MODEL)])])
        job = s.submit_job(BODY)
        done = s.wait_job(job["id"], timeout=6)
        self.assertEqual(done["status"], "failed", done)
        self.assertEqual(done["error"]["code"], "upstream_timeout", done)
        self.assertEqual(done["provider"], "novita-b", done)
        self.assertCredits(s, START)


# ---- the breaker's probe and open period -----------------------------------

class BreakerContract(UpstreamTest):
    def test_cancelled_probe_gives_the_probe_back(self):
        # The probe of a half-open circuit is cancelled by its client while
        # it waits out a 429's Retry-After: the circuit must let the next
        # submit probe (or be closed), not stay half-open with a probe
        # that will never report.
        a = self.fake([nv_fail_submits(503, 1),
                       {"exchanges": [nv_submit(
                           "limited", status=429,
                           doc={"code": 429, "reason": "RATE_LIMIT",
                                "message": "slow down", "metadata": {}},
                           headers={"Retry-After": "30"})]}],
                      generic="novita")
        b = self.fake(generic="novita")
        s = self.server({"novita": provider(a.url, breaker_failures=1,
                                            breaker_open_s=1),
                         "novita-b": dict(provider(b.url), type="novita")},
                        [model("m", [("novita", NOVITA_MODEL),
                                     ("novita-b", NOVITA_MODEL)])])
        r = s.generate(BODY)
        self.assertEqual(r.json["data"]["provider"], "novita-b", r)
        self.wait_circuit(s, "novita", "half_open")
        probe = s.submit_job(BODY)
        self.wait_requests(lambda: self.submits(a), 2)
        self.assertEqual(s.cancel_job(probe["id"]).status, 200)
        # The next job probes A (A would take it: generic mode).
        r = s.generate(BODY)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["provider"], "novita", (
            r.json["data"]["provider"], self.health(s, "novita")))
        self.assertEqual(self.health(s, "novita")["circuit"], "closed")

    def test_polls_do_not_close_an_open_circuit(self):
        # A job is being polled at A when a submit to A fails and opens
        # its circuit (breaker_failures 1). The circuit must stay open for
        # breaker_open_s (README: "new submits skip it for breaker_open_s;
        # then it is half-open: the next submit probes it"), even though
        # the polls of the job already there keep succeeding.
        a = self.fake([{"exchanges": [
            nv_submit("long"),
            nv_poll("long", "running", 10, repeat=True)]},
            nv_fail_submits(503, 1)])
        b = self.fake(generic="novita")
        s = self.server({"novita": provider(a.url, breaker_failures=1,
                                            breaker_open_s=60),
                         "novita-b": dict(provider(b.url), type="novita")},
                        [model("m", [("novita", NOVITA_MODEL),
                                     ("novita-b", NOVITA_MODEL)])])
        long_job = s.submit_job(BODY)
        self.wait_requests(lambda: self.polls(a, "long"), 1)
        job = s.submit_job(BODY)
        self.wait_requests(lambda: self.submits(b), 1)
        self.assertEqual(self.health(s, "novita")["circuit"], "open")
        n = len(self.polls(a, "long"))
        self.wait_requests(lambda: self.polls(a, "long"), n + 2)
        self.assertEqual(self.health(s, "novita")["circuit"], "open",
                         self.health(s, "novita"))
        r = s.generate(BODY)
        self.assertEqual(r.json["data"]["provider"], "novita-b", r)
        self.assertEqual(len(self.submits(a)), 2)
        self.assertSucceeded(s, job["id"], "novita-b")
        self.assertEqual(s.cancel_job(long_job["id"]).status, 200)
