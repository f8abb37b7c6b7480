"""Self-tests of the fake upstream provider (tests/fakes/fake_provider.py),
without vidgate: the matching rules (order, times, repeat, tracks, JSON,
query and header rules, mismatches answered 500 and recorded with a diff),
the responses ($BASE, redirect, delay, close, expiry, raw bodies, files),
the control endpoints, generic mode, the command line, and a replay of
every shipped scenario so that they stay self-consistent."""
import concurrent.futures
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from vg import multipart

FAKES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                     "fakes")
sys.path.insert(0, FAKES)

from fake_provider import (FakeProvider, SCENARIOS,  # noqa: E402
                           check_scenario, scenario_path)

PROVIDERS = ("novita", "google", "byteplus", "fal", "replicate", "openai")
REQUIRED = ("exact_t2v", "success", "failed", "malformed_poll",
            "rate_limited", "slow_poll", "server_error", "rejected")
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" * 64


def call(url, method="GET", body=None, headers=None, timeout=30):
    """(status, headers, body bytes) of one request; follows redirects."""
    data = None
    h = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) \
            else body
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def scenario(*exchanges, name="t"):
    return {"name": name, "exchanges": list(exchanges)}


def ex(method, path, response=None, **request):
    request.update(method=method, path=path)
    return {"request": request,
            "response": response if response is not None
            else {"json": {"ok": path}}}


class FakeTest(unittest.TestCase):
    """A fake per test; self.fake, self.video."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.video = os.path.join(cls.tmp.name, "clip.mp4")
        with open(cls.video, "wb") as f:
            f.write(VIDEO_BYTES)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def start(self, *scenarios, **kwargs):
        kwargs.setdefault("video", self.video)
        self.fake = FakeProvider(list(scenarios), **kwargs).start()
        self.addCleanup(self.fake.stop)
        return self.fake

    def get(self, path, **kw):
        return call(self.fake.url + path, **kw)

    def assertClean(self):
        self.assertEqual(self.fake.problems(), [])


class Matching(FakeTest):
    def test_exchanges_are_served_in_order(self):
        self.start(scenario(ex("POST", "/submit"), ex("GET", "/poll")))
        status, _, body = self.get("/poll")
        self.assertEqual(status, 500)
        self.assertIn("method: expected POST, got GET",
                      json.loads(body)["fake_error"])
        self.assertEqual(self.get("/submit", method="POST", body={})[0], 200)
        status, _, body = self.get("/poll")
        self.assertEqual((status, json.loads(body)), (200, {"ok": "/poll"}))
        rep = self.fake.report()
        self.assertEqual(rep["served"], 2)
        self.assertEqual(len(rep["mismatches"]), 1)
        self.assertEqual(rep["remaining"], [])

    def test_times_serves_an_exchange_that_many_times(self):
        e = ex("GET", "/poll")
        e["times"] = 2
        self.start(scenario(e, ex("GET", "/done")))
        self.assertEqual(self.get("/done")[0], 500)
        self.assertEqual(self.get("/poll")[0], 200)
        self.assertEqual(self.fake.report()["remaining"][0]["served"], 1)
        self.assertEqual(self.get("/poll")[0], 200)
        self.assertEqual(self.get("/poll")[0], 500)
        self.assertEqual(self.get("/done")[0], 200)
        self.assertEqual(self.fake.report()["remaining"], [])

    def test_repeat_serves_again_until_the_next_exchange_matches(self):
        running = ex("GET", "/task", {"json": {"status": "running"}})
        running["repeat"] = True
        self.start(scenario(running, ex("DELETE", "/task")))
        for _ in range(3):
            self.assertEqual(self.get("/task")[0], 200)
        self.assertEqual(self.get("/task", method="DELETE")[0], 200)
        self.assertEqual(self.get("/task")[0], 500)  # moved on
        self.assertEqual(self.fake.report()["remaining"], [])

    def test_times_zero_with_repeat_is_optional(self):
        optional = ex("GET", "/result")
        optional.update(times=0, repeat=True)
        self.start(scenario(ex("GET", "/status"), optional),
                   scenario(ex("GET", "/a"), optional, ex("GET", "/b"),
                            name="skips"))
        self.assertEqual(self.get("/status")[0], 200)
        self.assertEqual(self.get("/a")[0], 200)
        self.assertEqual(self.get("/b")[0], 200)
        self.assertTrue(self.fake.wait_done(0))
        self.assertClean()

    def test_a_mismatch_is_answered_500_and_recorded_with_a_diff(self):
        self.start(scenario(ex("POST", "/v3/async/x",
                               headers={"Authorization": "Bearer test-key"},
                               json={"duration": 5, "audio": False})))
        status, _, body = self.get("/v3/async/x", method="POST",
                                   body={"duration": "5", "audio": False},
                                   headers={"Authorization": "Bearer no"})
        self.assertEqual(status, 500)
        doc = json.loads(body)
        diff = doc["candidates"][0]["diff"]
        self.assertIn('headers.Authorization: expected "Bearer test-key", '
                      'got "Bearer no"', diff)
        self.assertIn('json.duration: expected 5, got "5"', diff)
        self.assertEqual(len(diff), 2, diff)
        rep = self.fake.report()
        self.assertEqual(rep["served"], 0)
        mismatch = rep["mismatches"][0]
        self.assertEqual((mismatch["method"], mismatch["path"]),
                         ("POST", "/v3/async/x"))
        self.assertEqual(mismatch["candidates"][0]["diff"], diff)
        self.assertEqual(mismatch["error"], doc["fake_error"])
        self.assertEqual(rep["log"][0]["status"], 500)
        self.assertEqual(len(rep["remaining"]), 1)
        self.assertEqual(len(self.fake.problems()), 2)
        with self.assertRaises(AssertionError):
            self.fake.assert_clean()

    def test_json_is_compared_deeply_and_strictly(self):
        want = {"a": 5, "b": True, "c": [1, {"d": "x"}], "e": None}
        e = ex("POST", "/j", json=want)
        e["repeat"] = True
        self.start(scenario(e))
        cases = [
            ({"a": 5.0, "b": True, "c": [1, {"d": "x"}], "e": None}, []),
            ({"a": 5, "b": 1, "c": [1, {"d": "x"}], "e": None},
             ["json.b: expected true, got 1"]),
            ({"a": 5, "b": True, "c": [1, {"d": "y"}, 3], "e": None},
             ['json.c[1].d: expected "x", got "y"',
              "json.c[2]: unexpected (got 3)"]),
            ({"a": 5, "b": True, "c": [1], "f": 0},
             ['json.c[1]: missing (expected {"d": "x"})',
              "json.e: missing (expected null)",
              "json.f: unexpected (got 0)"]),
        ]
        for body, expected in cases:
            status, _, text = self.get("/j", method="POST", body=body)
            if not expected:
                self.assertEqual(status, 200, text)
                continue
            self.assertEqual(status, 500)
            self.assertEqual(json.loads(text)["candidates"][0]["diff"],
                             expected)

    def test_json_wildcards(self):
        want = {"prompt": "*", "image": "<base64>", "frame": "<data-url>"}
        e = ex("POST", "/w", json=want)
        e["repeat"] = True
        self.start(scenario(e))
        good = {"prompt": {"any": ["thing"]}, "image": "aGVsbG8=",
                "frame": "data:image/png;base64,aGVsbG8="}
        self.assertEqual(self.get("/w", method="POST", body=good)[0], 200)
        bad = {"prompt": None, "image": "not base64!",
               "frame": "https://example.com/a.png"}
        status, _, text = self.get("/w", method="POST", body=bad)
        self.assertEqual(status, 500)
        diff = json.loads(text)["candidates"][0]["diff"]
        self.assertEqual([d.split(":")[0] for d in diff],
                         ["json.image", "json.frame"])
        status, _, text = self.get("/w", method="POST", body=b"{oops",
                                   headers={"Content-Type": "x"})
        self.assertIn('body: expected JSON, got "{oops"',
                      json.loads(text)["fake_error"])

    def test_whole_body_star_needs_some_json(self):
        self.start(scenario(ex("POST", "/any", json="*")))
        self.assertEqual(self.get("/any", method="POST")[0], 500)
        self.assertEqual(self.get("/any", method="POST", body=[1])[0], 200)

    def test_query_is_the_exact_set_of_parameters(self):
        e = ex("GET", "/q", query={"task_id": "abc", "sig": "*"})
        e["repeat"] = True
        self.start(scenario(e, ex("GET", "/none", query={})))
        self.assertEqual(self.get("/q?sig=1&task_id=abc")[0], 200)
        self.assertEqual(self.get("/q?task_id=abc&sig=%2F%3D")[0], 200)
        for query, diff in [
                ("task_id=abd&sig=1",
                 'query.task_id: expected "abc", got "abd"'),
                ("task_id=abc", 'query.sig: missing (expected "*")'),
                ("task_id=abc&sig=1&key=k",
                 'query.key: unexpected (got "k")')]:
            status, _, text = self.get("/q?" + query)
            self.assertEqual(status, 500)
            self.assertIn(diff, json.loads(text)["fake_error"])
        self.assertEqual(self.get("/none?x=1")[0], 500)
        self.assertEqual(self.get("/none")[0], 200)

    def test_headers_are_case_insensitive_star_and_null(self):
        e = ex("GET", "/h", headers={"X-Goog-Api-Key": "test-key",
                                     "x-trace": "*", "Authorization": None})
        e["repeat"] = True
        self.start(scenario(e))
        ok = {"x-goog-api-key": "test-key", "X-Trace": "1"}
        self.assertEqual(self.get("/h", headers=ok)[0], 200)
        status, _, text = self.get("/h", headers=dict(
            ok, Authorization="Bearer test-key"))
        self.assertIn('headers.Authorization: expected absent, got '
                      '"Bearer test-key"', json.loads(text)["fake_error"])
        status, _, text = self.get("/h", headers={"x-goog-api-key": "k"})
        diff = json.loads(text)["candidates"][0]["diff"]
        self.assertEqual(diff, [
            'headers.X-Goog-Api-Key: expected "test-key", got "k"',
            'headers.x-trace: missing (expected "*")'])

    def test_method_path_prefix_and_body_absent(self):
        e = ex("GET", "/x", body_absent=True)
        del e["request"]["path"]
        e["request"]["path_prefix"] = "/files/"
        e["repeat"] = True
        self.start(scenario(e))
        self.assertEqual(self.get("/files/a.mp4")[0], 200)
        self.assertEqual(self.get("/other/a.mp4")[0], 500)
        status, _, text = self.get("/files/a", method="GET", body={"a": 1})
        self.assertIn("body: expected none, got 8 bytes",
                      json.loads(text)["fake_error"])

    def test_tracks_take_the_requests_of_their_own_job(self):
        def job(task):
            return scenario(
                ex("GET", "/poll", {"json": {"id": task, "s": "running"}},
                   query={"id": task}),
                ex("GET", "/poll", {"json": {"id": task, "s": "done"}},
                   query={"id": task}), name="job " + task)
        self.start(job("a"), job("b"))
        order = ["b", "a", "a", "b"]
        states = [json.loads(self.get("/poll?id=" + t)[2])["s"]
                  for t in order]
        self.assertEqual(states, ["running", "running", "done", "done"])
        self.assertEqual(self.get("/poll?id=a")[0], 500)
        mismatch = self.fake.report()["mismatches"][0]
        self.assertEqual([c["diff"] for c in mismatch["candidates"]],
                         [["every exchange already served"]] * 2)
        log = self.fake.report()["log"]
        self.assertEqual([e["track"] for e in log[:4]],
                         ["job b", "job a", "job a", "job b"])

    def test_wait_done_and_remaining(self):
        self.start(scenario(ex("GET", "/a"), ex("GET", "/b"), name="s"))
        self.assertFalse(self.fake.wait_done(0.1))
        self.assertEqual([(r["track"], r["index"], r["name"])
                          for r in self.fake.report()["remaining"]],
                         [("s", 0, "GET /a"), ("s", 1, "GET /b")])
        self.get("/a")
        self.get("/b")
        self.assertTrue(self.fake.wait_done(1))

    def test_scenarios_with_unknown_keys_are_refused(self):
        for bad in [{"name": "x", "exchanges": [{"request": {"methd": "GET"},
                                                 "response": {}}]},
                    {"name": "x", "exchanges": [{"request": {},
                                                 "response": {"jsn": {}}}]},
                    {"name": "x", "exchanges": [{"request": {},
                                                 "response": {},
                                                 "times": 0}]},
                    {"name": "x", "exchanges": [{
                        "request": {}, "response": {"json": 1, "body": ""}}]},
                    {"name": "x", "exchnges": []}]:
            with self.assertRaises(ValueError):
                check_scenario(bad)


class Responses(FakeTest):
    def test_base_is_replaced_in_json_body_headers(self):
        self.start(scenario(ex("GET", "/r", {
            "headers": {"Link": "<$BASE/next>"},
            "json": {"status_url": "$BASE/q/1/status", "n": [{"u": "$BASE"}]}}),
            ex("GET", "/raw", {"body": "url=$BASE/x"})))
        status, headers, body = self.get("/r")
        self.assertEqual(json.loads(body), {
            "status_url": self.fake.url + "/q/1/status",
            "n": [{"u": self.fake.url}]})
        self.assertEqual(headers["Link"], "<%s/next>" % self.fake.url)
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(self.get("/raw")[2],
                         ("url=%s/x" % self.fake.url).encode())

    def test_redirect_to_another_path_on_the_fake(self):
        self.start(scenario(
            ex("GET", "/files/x:download", {"redirect": "$BASE/cdn/x.mp4"}),
            ex("GET", "/cdn/x.mp4", {"file": "$VIDEO"})))
        status, headers, body = self.get("/files/x:download")  # follows
        self.assertEqual((status, body), (200, VIDEO_BYTES))
        self.assertEqual(headers["Content-Type"], "video/mp4")
        log = self.fake.report()["log"]
        self.assertEqual([(e["path"], e["status"]) for e in log],
                         [("/files/x:download", 302), ("/cdn/x.mp4", 200)])
        self.assertClean()

    def test_delay_ms_answers_late(self):
        self.start(scenario(ex("GET", "/slow", {"json": {}, "delay_ms": 400}),
                            ex("GET", "/fast")))
        t0 = time.monotonic()
        self.assertEqual(self.get("/slow")[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        t0 = time.monotonic()
        self.get("/fast")
        self.assertLess(time.monotonic() - t0, 0.3)

    def test_close_drops_the_connection(self):
        self.start(scenario(ex("GET", "/drop", {"close": True}),
                            ex("GET", "/after")))
        with self.assertRaises((http.client.HTTPException, OSError)):
            self.get("/drop")
        self.assertEqual(self.get("/after")[0], 200)
        entry = self.fake.report()["log"][0]
        self.assertTrue(entry["closed"])
        self.assertClean()

    def test_expires_after_ms(self):
        fresh = ex("GET", "/video.mp4", {"file": "$VIDEO"})
        fresh["expires_after_ms"] = 300
        gone = dict(fresh, expired_status=404)
        self.start(scenario(ex("GET", "/poll"), fresh, name="prompt"),
                   scenario(ex("GET", "/poll2"), gone, name="late"))
        self.get("/poll")
        self.get("/poll2")
        self.assertEqual(self.get("/video.mp4")[0], 200)  # prompt: fresh
        time.sleep(0.4)
        status, headers, body = self.get("/video.mp4")  # late: expired
        self.assertEqual(status, 404)
        self.assertIn(b"NoSuchKey", body)
        log = self.fake.report()["log"]
        self.assertEqual([e.get("expired") for e in log[2:]], [None, True])
        self.assertClean()
        always = dict(fresh, expires_after_ms=0)
        self.fake.load(scenario(always))
        status, _, body = self.get("/video.mp4")
        self.assertEqual(status, 403)
        self.assertIn(b"Request has expired", body)

    def test_malformed_body_is_sent_as_is(self):
        raw = '{"task": {"status": "TASK_STATUS_PROCE'
        self.start(scenario(ex("GET", "/poll", {"body": raw}),
                            ex("GET", "/err", {"status": 502, "body": "<html>",
                                               "headers": {"Content-Type":
                                                           "text/html"}})))
        status, headers, body = self.get("/poll")
        self.assertEqual((status, body), (200, raw.encode()))
        status, headers, body = self.get("/err")
        self.assertEqual((status, headers["Content-Type"], body),
                         (502, "text/html", b"<html>"))

    def test_files_relative_to_the_scenario(self):
        path = os.path.join(self.tmp.name, "s.json")
        with open(os.path.join(self.tmp.name, "answer.bin"), "wb") as f:
            f.write(b"data")
        with open(path, "w") as f:
            json.dump(scenario(ex("GET", "/f", {"file": "answer.bin"})), f)
        self.start(path)
        self.assertEqual(self.get("/f")[2], b"data")
        self.assertEqual(self.fake.report()["log"][0]["track"], "t")

    def test_missing_video_is_a_mismatch(self):
        self.start(scenario(ex("GET", "/v", {"file": "$VIDEO"})),
                   video=os.path.join(self.tmp.name, "none.mp4"))
        status, _, body = self.get("/v")
        self.assertEqual(status, 500)
        self.assertIn("VG_FAKE_VIDEO", json.loads(body)["fake_error"])
        self.assertEqual(len(self.fake.report()["mismatches"]), 1)

    def test_the_log_has_what_was_sent(self):
        self.start(scenario(ex("POST", "/s", json="*")))
        self.get("/s?a=1", method="POST", body={"prompt": "fox"},
                 headers={"Authorization": "Key test-key"})
        entry = self.fake.requests("POST", "/s")[0]
        self.assertEqual(entry["json"], {"prompt": "fox"})
        self.assertEqual(entry["body"], '{"prompt": "fox"}')
        self.assertEqual(entry["query"], {"a": "1"})
        self.assertEqual(entry["headers"]["authorization"], "Key test-key")
        self.assertNotIn("host", entry["headers"])
        self.assertEqual((entry["track"], entry["index"], entry["status"]),
                         ("t", 0, 200))


class Control(FakeTest):
    def test_load_report_and_reset_over_http(self):
        self.start()
        status, _, body = self.get("/x")
        self.assertIn("no scenario loaded", json.loads(body)["fake_error"])
        status, _, body = self.get("/_fake/load", method="POST",
                                   body=scenario(ex("GET", "/x"), name="a"))
        self.assertEqual(json.loads(body), {"track": 0, "name": "a"})
        status, _, body = self.get(
            "/_fake/load", method="POST",
            body={"path": scenario_path("novita/success")})
        self.assertEqual(json.loads(body)["name"], "novita/success")
        status, _, body = self.get("/_fake/load", method="POST",
                                   body={"exchanges": [{}]})
        self.assertEqual(status, 400)
        self.assertEqual(self.get("/x")[0], 200)
        rep = json.loads(self.get("/_fake/report")[2])
        self.assertEqual(rep["served"], 1)
        self.assertEqual(len(rep["mismatches"]), 1)
        self.assertEqual(rep["remaining"][0]["track"], "novita/success")
        self.assertEqual(len(rep["log"]), 2)  # control calls not logged
        self.get("/_fake/reset", method="POST")
        self.assertEqual(self.fake.report(), {
            "served": 0, "mismatches": [], "remaining": [], "log": [],
            "log_dropped": 0})


class Generic(FakeTest):
    def run_job(self, submit, poll, done, download=None, job_ms=300):
        """Submits, checks the first poll is not done, waits job_ms, polls
        until done(doc) and downloads; returns the polled documents."""
        method, path, body = submit(self)
        status, _, text = self.get(path, method=method, body=body)
        self.assertIn(status, (200, 201), text)
        doc = json.loads(text)
        polls = [json.loads(self.get(poll(doc))[2])]
        self.assertFalse(done(polls[0]), polls[0])
        time.sleep(job_ms / 1000 + 0.05)
        polls.append(json.loads(self.get(poll(doc))[2]))
        self.assertTrue(done(polls[-1]), polls[-1])
        url = download(polls[-1]) if download else None
        if url:
            self.assertEqual(call(url)[2], VIDEO_BYTES)
        self.assertEqual(self.fake.report()["mismatches"], [])
        return doc, polls

    def test_novita(self):
        self.start(generic="novita", job_ms=300)
        _, polls = self.run_job(
            lambda t: ("POST", "/v3/async/seedance-v1-pro-t2v", {}),
            lambda d: "/v3/async/task-result?task_id=" + d["task_id"],
            lambda d: d["task"]["status"] == "TASK_STATUS_SUCCEED",
            lambda d: d["videos"][0]["video_url"])
        self.assertEqual(polls[0]["task"]["status"], "TASK_STATUS_QUEUED")
        self.assertEqual(polls[-1]["videos"][0]["video_url_ttl"], "3600")
        self.assertEqual(self.get("/v3/async/task-result?task_id=nope")[0],
                         404)
        stats = self.fake.report()["generic"]
        self.assertEqual((stats["jobs"], stats["downloads"]), (1, 1))

    def test_novita_many_jobs_have_their_own_ids(self):
        self.start(generic="novita", job_ms=300)
        ids = {json.loads(self.get("/v3/async/x", method="POST",
                                   body={})[2])["task_id"]
               for _ in range(50)}
        self.assertEqual(len(ids), 50)

    def test_byteplus_with_cancel(self):
        self.start(generic="byteplus", job_ms=300)
        tasks = "/api/v3/contents/generations/tasks"
        self.run_job(
            lambda t: ("POST", tasks, {"model": "m"}),
            lambda d: tasks + "/" + d["id"],
            lambda d: d["status"] == "succeeded",
            lambda d: d["content"]["video_url"])
        job = json.loads(self.get(tasks, method="POST", body={})[2])
        self.assertRegex(job["id"], r"^cgt-\d{14}-\w+$")
        self.assertEqual(self.get(tasks + "/" + job["id"],
                                  method="DELETE")[0], 200)
        self.assertEqual(json.loads(self.get(tasks + "/" + job["id"])[2])
                         ["status"], "cancelled")

    def test_openai(self):
        self.start(generic="openai", job_ms=300)
        doc, polls = self.run_job(
            lambda t: ("POST", "/v1/videos", {"model": "sora-2",
                                              "seconds": "4"}),
            lambda d: "/v1/videos/" + d["id"],
            lambda d: d["status"] == "completed")
        self.assertEqual(doc["status"], "queued")
        status, _, body = self.get("/v1/videos/%s/content" % doc["id"])
        self.assertEqual((status, body), (200, VIDEO_BYTES))

    def test_google_fal_replicate(self):
        self.start(generic="google", job_ms=300)
        self.run_job(
            lambda t: ("POST", "/v1beta/models/veo-3.0-generate-001:"
                               "predictLongRunning", {}),
            lambda d: "/v1beta/" + d["name"],
            lambda d: d.get("done"),
            lambda d: d["response"]["generateVideoResponse"][
                "generatedSamples"][0]["video"]["uri"])
        self.fake.stop()
        self.start(generic="fal", job_ms=300)
        doc, _ = self.run_job(
            lambda t: ("POST", "/fal-ai/veo3", {}),
            lambda d: d["status_url"][len(self.fake.url):],
            lambda d: d["status"] == "COMPLETED")
        result = json.loads(call(doc["response_url"])[2])
        self.assertEqual(call(result["video"]["url"])[2], VIDEO_BYTES)
        self.fake.stop()
        self.start(generic="replicate", job_ms=300)
        self.run_job(
            lambda t: ("POST", "/v1/models/o/m/predictions", {"input": {}}),
            lambda d: d["urls"]["get"][len(self.fake.url):],
            lambda d: d["status"] == "succeeded",
            lambda d: d["output"])

    def test_scripted_tracks_come_first(self):
        self.start(scenario(ex("POST", "/v3/async/special",
                               {"json": {"task_id": "scripted"}})),
                   generic="novita", job_ms=300)
        special = json.loads(self.get("/v3/async/special", method="POST",
                                      body={})[2])
        other = json.loads(self.get("/v3/async/special", method="POST",
                                    body={})[2])
        self.assertEqual(special["task_id"], "scripted")
        self.assertNotEqual(other["task_id"], "scripted")
        self.assertEqual(self.get("/nothing/here")[0], 500)


# ---- the shipped scenarios ------------------------------------------------

def _synthesize(want):
    """A JSON value that matches the expected one (wildcards filled in)."""
    if want == "*":
        return "any"
    if want == "<base64>":
        return "aGVsbG8="
    if want == "<data-url>":
        return "data:image/png;base64,aGVsbG8="
    if isinstance(want, dict):
        return {k: _synthesize(v) for k, v in want.items()}
    if isinstance(want, list):
        return [_synthesize(v) for v in want]
    return want


def _urls(value, base, out):
    if isinstance(value, str) and value.startswith(base):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _urls(v, base, out)
    elif isinstance(value, list):
        for v in value:
            _urls(v, base, out)


def replay(path, video):
    """Plays the client's side of a scenario file against the fake; the
    problems found (empty when the scenario is self-consistent). A request
    whose path an earlier response gave (download, redirect, fal's queue
    URLs) is sent to that URL, query included; downloads must be such."""
    with open(path) as f:
        doc = json.load(f)
    provider = os.path.basename(os.path.dirname(path))
    problems = []
    with FakeProvider(path, video=video) as fake:
        given = []  # URLs on the fake that responses handed out
        for i, exchange in enumerate(doc["exchanges"]):
            want = dict(exchange["request"])
            want.setdefault("method", "GET")
            if "path" not in want:
                want["path"] = want.get("path_prefix", "/") + "x"
            resp = exchange["response"]
            target = None
            for url in given:
                parts = urllib.parse.urlsplit(url)
                if urllib.parse.unquote(parts.path) == want["path"]:
                    target = parts.path + ("?" + parts.query
                                           if parts.query else "")
            submit = doc["exchanges"][0]["request"].get("path")
            must_link = (provider == "fal"
                         and want["path"] != submit) or (
                ("file" in resp or "redirect" in resp)
                and not want["path"].endswith("/content"))
            if target is None:
                if must_link:
                    problems.append("#%d %s: no earlier response gave this "
                                    "URL" % (i, want["path"]))
                query = {k: ("x" if v == "*" else v)
                         for k, v in want.get("query", {}).items()}
                target = want["path"] + ("?" + urllib.parse.urlencode(query)
                                         if query else "")
            headers = {k: ("x" if v == "*" else v)
                       for k, v in want.get("headers", {}).items()
                       if v is not None}
            body = None
            if "json" in want:
                value = _synthesize(want["json"])
                body = json.dumps({} if want["json"] == "*" else value)
            if "form" in want:
                fields = {} if want["form"] == "*" else want["form"]
                files = [(name, f["filename"], b"x", f["content_type"])
                         for name, f in (want.get("files") or {}).items()
                         if want.get("files") != "*"]
                body, headers["Content-Type"] = multipart(fields, files)
            for _ in range(exchange.get("times", 1)):
                conn = http.client.HTTPConnection("127.0.0.1", fake.port,
                                                  timeout=30)
                try:
                    conn.request(want["method"], target, body=body,
                                 headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                    if r.status != resp.get("status", r.status):
                        if not exchange.get("expires_after_ms") == 0:
                            problems.append("#%d: status %d: %r"
                                            % (i, r.status, data[:300]))
                    if r.getheader("Location"):
                        given.append(r.getheader("Location"))
                    try:
                        _urls(json.loads(data), fake.url, given)
                    except ValueError:
                        pass
                finally:
                    conn.close()
        problems += fake.problems()
    return problems


class ShippedScenarios(unittest.TestCase):
    def files(self):
        out = []
        for provider in sorted(os.listdir(SCENARIOS)):
            for name in sorted(os.listdir(os.path.join(SCENARIOS,
                                                       provider))):
                if name.endswith(".json"):
                    out.append(os.path.join(SCENARIOS, provider, name))
        return out

    def test_every_provider_has_the_required_scenarios(self):
        have = {os.path.relpath(p, SCENARIOS)[:-5] for p in self.files()}
        for provider in PROVIDERS:
            for name in REQUIRED:
                self.assertIn("%s/%s" % (provider, name), have)
        for name in ("novita/no_balance", "byteplus/no_balance",
                     "byteplus/cancel", "google/safety_filtered",
                     "google/success", "fal/success", "replicate/cancel"):
            self.assertIn(name, have)

    def test_scenarios_load(self):
        for path in self.files():
            with self.subTest(path=path):
                with open(path) as f:
                    doc = json.load(f)
                check_scenario(doc, path)
                self.assertIn(os.path.basename(os.path.dirname(path)),
                              PROVIDERS)

    def test_exact_files_state_their_spec_and_full_body(self):
        for provider in PROVIDERS:
            with open(scenario_path(provider + "/exact_t2v")) as f:
                doc = json.load(f)
            self.assertEqual(doc["spec"]["prompt"],
                             "a red fox running through snow")
            request = doc["exchanges"][0]["request"]
            # The OpenAI create is a form, as its official client sends it.
            body = request["form" if provider == "openai" else "json"]
            self.assertIsInstance(body, dict, provider)
            self.assertNotIn('"*"', json.dumps(body), provider)

    def test_keys_and_signed_downloads(self):
        keys = {"novita": ("Authorization", "Bearer test-key"),
                "byteplus": ("Authorization", "Bearer test-key"),
                "replicate": ("Authorization", "Bearer test-key"),
                "openai": ("Authorization", "Bearer test-key"),
                "fal": ("Authorization", "Key test-key"),
                "google": ("x-goog-api-key", "test-key")}
        for path in self.files():
            with open(path) as f:
                doc = json.load(f)
            provider = os.path.basename(os.path.dirname(path))
            name, value = keys[provider]
            first = doc["exchanges"][0]["request"].get("headers", {})
            self.assertEqual(first.get(name), value, path)
            if provider in ("google", "openai"):
                continue  # their downloads go to the API, with the key
            for exchange in doc["exchanges"]:
                if set(exchange["response"]) & {"file", "redirect"}:
                    headers = exchange["request"].get("headers", {})
                    self.assertIn("Authorization", headers, path)
                    self.assertIsNone(headers["Authorization"], path)

    def test_replay_every_scenario(self):
        with tempfile.TemporaryDirectory() as tmp:
            video = os.path.join(tmp, "v.mp4")
            with open(video, "wb") as f:
                f.write(VIDEO_BYTES)
            files = self.files()
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                results = list(pool.map(lambda p: replay(p, video), files))
        for path, problems in zip(files, results):
            with self.subTest(scenario=os.path.relpath(path, SCENARIOS)):
                self.assertEqual(problems, [])


class CommandLine(unittest.TestCase):
    def test_serves_a_scenario_until_killed(self):
        with tempfile.TemporaryDirectory() as tmp:
            video = os.path.join(tmp, "v.mp4")
            with open(video, "wb") as f:
                f.write(VIDEO_BYTES)
            proc = subprocess.Popen(
                [sys.executable, os.path.join(FAKES, "fake_provider.py"),
                 "--port", "0", "--video", video,
                 scenario_path("novita/rejected")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = proc.stdout.readline()
                self.assertRegex(line, r"^listening on \d+$")
                base = "http://127.0.0.1:%s" % line.split()[-1]
                status, _, body = call(
                    base + "/v3/async/seedance-v1.5-pro-t2v", method="POST",
                    body={"prompt": "x"},
                    headers={"Authorization": "Bearer test-key"})
                self.assertEqual(status, 400)
                self.assertEqual(json.loads(body)["reason"],
                                 "INVALID_REQUEST_BODY")
                rep = json.loads(call(base + "/_fake/report")[2])
                self.assertEqual((rep["served"], rep["remaining"]), (1, []))
            finally:
                proc.terminate()
                _, err = proc.communicate(timeout=10)
            self.assertEqual(proc.returncode, 0)
            self.assertIn("1 served, 0 problem(s)", err)


if __name__ == "__main__":
    unittest.main()
