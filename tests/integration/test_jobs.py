"""Asynchronous jobs: Prefer: respond-async and wait=N, the job object and
its states, GET/list/DELETE /v1/ula/jobs, refunds, tenancy, the server's
max_sync_wait_s, and clients that hang up on a synchronous request.

Timing-sensitive cases use the replay provider (a copy of a small MP4
after delay_ms), so they do not depend on how fast this machine renders.
"""
import socket
import threading
import time
import unittest
import uuid

from vg import (FINISHED, JOB_FIELDS, RESULT_FIELDS, BROKEN_PNG_URL,
                ReplayServerTest, price, replay_body, request_body,
                result_without_link_query, wait_for)

# A local render long enough to be cancelled while it runs (~9 s alone on
# two cores).
LONG_LOCAL = dict(resolution="1080P", aspect_ratio="16:9", duration=12,
                  generate_audio=True)


class JobChecks:
    """Assertions shared by the classes below."""

    def assertJob(self, job, status=None):
        s = self.server
        self.assertEqual(set(job), JOB_FIELDS, job)
        self.assertEqual(job["object"], "job")
        self.assertEqual(len(job["id"]), 36)
        if status is not None:
            self.assertEqual(job["status"], status, job)
        self.assertIn(job["status"], ("queued", "running") + FINISHED)
        self.assertIsInstance(job["progress"], int)
        self.assertTrue(0 <= job["progress"] <= 100, job)
        self.assertIn(job["service_tier"], ("default", "flex"))
        self.assertIsInstance(job["seed"], int)
        self.assertIsInstance(job["attempts"], int)
        self.assertLessEqual(abs(job["created"] - time.time()), 300)
        base = "http://127.0.0.1:%d" % s.port
        self.assertEqual(job["status_url"],
                         base + "/v1/ula/jobs/" + job["id"])
        self.assertEqual(job["events_url"],
                         base + "/v1/ula/jobs/" + job["id"] + "/events")
        for k in ("started", "finished", "eta"):
            self.assertTrue(job[k] is None or isinstance(job[k], int), job)
        if job["status"] == "queued":
            self.assertIsNone(job["started"], job)
            self.assertIsNone(job["finished"], job)
            self.assertIsNone(job["error"], job)
            self.assertIsNone(job["data"], job)
        if job["status"] == "running":
            self.assertIsNotNone(job["started"], job)
            self.assertIsNone(job["finished"], job)
            self.assertGreaterEqual(job["attempts"], 1, job)
            self.assertIsNone(job["error"], job)
            self.assertIsNone(job["data"], job)
        if job["status"] in FINISHED:
            self.assertIsNotNone(job["finished"], job)
            self.assertIsNone(job["eta"], job)
        if job["status"] == "succeeded":
            self.assertEqual(job["progress"], 100)
            self.assertIsNone(job["error"], job)
            self.assertEqual(set(job["data"]), RESULT_FIELDS, job)
            self.assertEqual(job["data"]["id"], job["id"])
            self.assertGreaterEqual(job["finished"], job["started"])
            self.assertGreaterEqual(job["started"], job["created"])
        if job["status"] in ("failed", "cancelled"):
            self.assertIsNone(job["data"], job)
            self.assertEqual(set(job["error"]), {"code", "message",
                                                 "status"}, job)
            self.assertIsInstance(job["error"]["status"], int)
        if job["status"] == "cancelled":
            self.assertEqual(job["error"]["code"], "cancelled", job)
        return job

    def assertSuccessEnvelope(self, r, status):
        self.assertEqual(r.status, status, r)
        doc = r.json
        self.assertEqual(set(doc), {"api_details", "data", "error"})
        self.assertEqual(doc["api_details"]["api_status"], "success")
        self.assertEqual(doc["error"], {})
        return doc["data"]

    def assertError(self, r, status, code):
        self.assertEqual(r.status, status, r)
        doc = r.json
        self.assertEqual(doc["api_details"]["api_status"], "failure", doc)
        self.assertEqual(doc["error"]["code"], code, doc)
        self.assertEqual(doc["error"]["status"], status, doc)
        return doc["error"]

    def assertCredits(self, key, expected):
        self.assertAlmostEqual(self.server.credits(key), expected, places=3)

    def assertLedgerOk(self):
        p = self.server.cli("ledger", "check", check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def newest_job_id(self, key, timeout=10):
        def find():
            r = self.server.list_jobs(key, limit=1)
            if r.status == 200 and r.json["data"]["jobs"]:
                return r.json["data"]["jobs"][0]["id"]
            return None
        job_id = wait_for(find, timeout, 0.02)
        self.assertIsNotNone(job_id, "the job never appeared in the list")
        return job_id


class Lifecycle(JobChecks, ReplayServerTest):
    """One replay slot, 1 s per job: a second job waits in the queue."""
    replay_delay_ms = 1000
    replay_concurrency = 1

    def test_respond_async_answers_202_with_the_job(self):
        s = self.server
        key = s.new_key("async", 100)
        started = time.time()
        r = s.submit(replay_body(seed=4242), key)
        self.assertLess(time.time() - started, 1.0, "202 was not immediate")
        job = self.assertSuccessEnvelope(r, 202)
        self.assertJob(job)
        self.assertIn(job["status"], ("queued", "running"))
        self.assertEqual(r.header("Location"), "/v1/ula/jobs/" + job["id"])
        self.assertEqual(r.header("Preference-Applied"), "respond-async")
        self.assertEqual(r.header("X-Vidgate-Job"), job["id"])
        self.assertEqual(r.header("X-Vidgate-Seed"), "4242")
        self.assertEqual(job["seed"], 4242)
        self.assertEqual(job["model"], "replay-video")
        self.assertEqual(job["provider"], "replay")
        self.assertEqual(job["service_tier"], "default")
        self.assertIsNone(job["webhook_url"])
        # The price is reserved at once.
        self.assertCredits(key, 100 - price(replay_body()))
        done = self.assertJob(s.wait_job(job["id"], key=key), "succeeded")
        self.assertEqual(done["seed"], 4242)
        self.assertCredits(key, 100 - price(replay_body()))

    def test_random_seed_is_reported_on_202(self):
        s = self.server
        key = s.new_key("seed", 10)
        r = s.submit(replay_body(seed=-1), key)
        job = self.assertSuccessEnvelope(r, 202)
        self.assertTrue(r.header("X-Vidgate-Seed").isdigit(), r.headers)
        self.assertEqual(int(r.header("X-Vidgate-Seed")), job["seed"])
        self.assertTrue(0 <= job["seed"] <= 4294967295)
        self.assertEqual(s.wait_job(job["id"], key=key)["seed"], job["seed"])

    def test_queued_running_succeeded(self):
        s = self.server
        key = s.new_key("states", 100)
        first = s.submit_job(replay_body(), key)
        second = s.submit_job(replay_body(service_tier="flex",
                                          generate_audio=True), key)
        self.assertCredits(key, 100 - price(replay_body()) - price(
            replay_body(service_tier="flex", generate_audio=True)))
        seen = {}

        def observe():
            job = s.job(second["id"], key)
            seen.setdefault(job["status"], job)
            return job["status"] in FINISHED

        self.assertTrue(wait_for(observe, 20, 0.05), seen)
        self.assertEqual(list(seen), ["queued", "running", "succeeded"],
                         "states seen in order: %r" % list(seen))
        queued = self.assertJob(seen["queued"], "queued")
        self.assertEqual(queued["attempts"], 0)
        self.assertEqual(queued["progress"], 0)
        self.assertIsNone(queued["eta"])
        self.assertEqual(queued["service_tier"], "flex")
        running = self.assertJob(seen["running"], "running")
        self.assertEqual(running["attempts"], 1)
        done = self.assertJob(seen["succeeded"], "succeeded")
        self.assertEqual(done["attempts"], 1)
        self.assertEqual(done["data"]["provider"], "replay")
        self.assertEqual(done["data"]["model"], "replay-video")
        self.assertEqual(done["data"]["text"], "Generated video for "
                         "prompt: " + replay_body()["prompt"])
        video = s.fetch_url(done["data"]["videos"][0]["url"])
        self.assertEqual(video.status, 200, video)
        with open(self.mp4, "rb") as f:
            self.assertEqual(video.body, f.read())
        # The first job finished too, before the second one started.
        first = self.assertJob(s.wait_job(first["id"], key=key),
                               "succeeded")
        self.assertLessEqual(first["finished"], done["started"] + 1)
        self.assertCredits(key, 100 - price(replay_body()) - price(
            replay_body(service_tier="flex", generate_audio=True)))
        self.assertLedgerOk()

    def test_succeeded_job_data_is_the_synchronous_answer(self):
        s = self.server
        key = s.new_key("sync", 100)
        r = s.generate(replay_body(), key)
        data = self.assertSuccessEnvelope(r, 200)
        self.assertEqual(set(data), RESULT_FIELDS)
        job_id = r.header("X-Vidgate-Job")
        self.assertEqual(data["id"], job_id)
        job = self.assertJob(s.job(job_id, key), "succeeded")
        self.assertEqual(result_without_link_query(job["data"]),
                         result_without_link_query(data))
        self.assertEqual(str(job["seed"]), r.header("X-Vidgate-Seed"))
        got = s.fetch_url(job["data"]["videos"][0]["url"])
        self.assertEqual(got.status, 200, got)

    def test_failed_job(self):
        s = self.server
        key = s.new_key("fails", 10)
        r = s.submit(request_body(files=[BROKEN_PNG_URL]), key)
        job = self.assertSuccessEnvelope(r, 202)
        job = self.assertJob(s.wait_job(job["id"], key=key), "failed")
        self.assertEqual(job["error"]["code"], "invalid_image")
        self.assertEqual(job["error"]["status"], 422)
        self.assertIn("image 1 of 1", job["error"]["message"])
        self.assertCredits(key, 10)
        self.assertLedgerOk()

    def test_unknown_job_is_404(self):
        s = self.server
        for job_id in (str(uuid.uuid4()), "nope", "x" * 200):
            with self.subTest(job_id=job_id[:20]):
                self.assertError(s.get_job(job_id), 404, "job_not_found")
                self.assertError(s.cancel_job(job_id), 404, "job_not_found")

    def test_job_routes_need_auth(self):
        s = self.server
        job_id = str(uuid.uuid4())
        for method, path in (("GET", "/v1/ula/jobs"),
                             ("GET", "/v1/ula/jobs/" + job_id),
                             ("DELETE", "/v1/ula/jobs/" + job_id),
                             ("GET", "/v1/ula/jobs/%s/events" % job_id)):
            with self.subTest(method=method, path=path):
                self.assertEqual(s.request(method, path).status, 401)


class Cancel(JobChecks, ReplayServerTest):
    """One replay slot, 1.5 s per job."""
    replay_delay_ms = 1500
    replay_concurrency = 1

    def test_cancel_a_queued_job(self):
        s = self.server
        key = s.new_key("cq", 100)
        blocker = s.submit_job(replay_body(), key)
        queued = s.submit_job(replay_body(generate_audio=True), key)
        self.assertEqual(s.job(queued["id"], key)["status"], "queued")
        self.assertCredits(key, 100 - 4 - 6)
        r = s.cancel_job(queued["id"], key)
        job = self.assertJob(self.assertSuccessEnvelope(r, 200),
                             "cancelled")
        self.assertEqual(job["id"], queued["id"])
        self.assertEqual(job["error"]["code"], "cancelled")
        self.assertIsNone(job["started"])
        self.assertCredits(key, 100 - 4)
        # Cancelled is final: the job never runs, and cancelling again
        # is a conflict that refunds nothing more.
        s.wait_job(blocker["id"], key=key)
        time.sleep(0.5)
        job = self.assertJob(s.job(queued["id"], key), "cancelled")
        self.assertIsNone(job["started"])
        self.assertEqual(job["attempts"], 0)
        self.assertError(s.cancel_job(queued["id"], key), 409,
                         "job_finished")
        self.assertCredits(key, 100 - 4)
        self.assertLedgerOk()

    def test_cancel_a_running_job(self):
        s = self.server
        key = s.new_key("cr", 100)
        job = s.submit_job(replay_body(resolution="720P"), key)
        s.wait_job(job["id"], ("running",), key)
        self.assertCredits(key, 100 - 8)
        r = s.cancel_job(job["id"], key)
        cancelled = self.assertJob(self.assertSuccessEnvelope(r, 200),
                                   "cancelled")
        self.assertIsNotNone(cancelled["started"])
        self.assertCredits(key, 100)
        # Still cancelled (and refunded) once the provider's time is up.
        time.sleep(1.8)
        self.assertJob(s.job(job["id"], key), "cancelled")
        self.assertError(s.cancel_job(job["id"], key), 409, "job_finished")
        self.assertCredits(key, 100)
        self.assertLedgerOk()

    def test_cancel_a_running_local_render(self):
        s = self.server
        key = s.new_key("crl", 200)
        job = s.submit_job(request_body(**LONG_LOCAL), key)
        s.wait_job(job["id"], ("running",), key)
        self.assertCredits(key, 200 - 72)
        r = s.cancel_job(job["id"], key)
        self.assertJob(self.assertSuccessEnvelope(r, 200), "cancelled")
        self.assertCredits(key, 200)
        time.sleep(1)
        self.assertJob(s.job(job["id"], key), "cancelled")
        self.assertCredits(key, 200)
        self.assertLedgerOk()

    def test_cancel_a_succeeded_job_is_409(self):
        s = self.server
        key = s.new_key("cs", 100)
        r = s.generate(replay_body(), key)
        self.assertEqual(r.status, 200, r)
        job_id = r.header("X-Vidgate-Job")
        self.assertError(s.cancel_job(job_id, key), 409, "job_finished")
        self.assertJob(s.job(job_id, key), "succeeded")
        self.assertCredits(key, 96)

    def test_cancel_a_failed_job_is_409(self):
        s = self.server
        key = s.new_key("cf", 100)
        job = s.submit_job(request_body(files=[BROKEN_PNG_URL]), key)
        s.wait_job(job["id"], key=key)
        self.assertError(s.cancel_job(job["id"], key), 409, "job_finished")
        self.assertJob(s.job(job["id"], key), "failed")
        self.assertCredits(key, 100)

    def test_synchronous_waiter_of_a_cancelled_job_gets_409(self):
        s = self.server
        key = s.new_key("cw", 100)
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault(
            "r", s.generate(replay_body(), key)))
        thread.start()
        job_id = self.newest_job_id(key)
        r = s.cancel_job(job_id, key)
        self.assertEqual(r.status, 200, r)
        thread.join(30)
        self.assertFalse(thread.is_alive())
        self.assertError(result["r"], 409, "cancelled")
        self.assertEqual(result["r"].header("X-Vidgate-Job"), job_id)
        self.assertCredits(key, 100)


class Tenancy(JobChecks, ReplayServerTest):
    replay_delay_ms = 1500

    def test_another_accounts_job_is_invisible(self):
        s = self.server
        mine = s.new_key("mine", 100)
        other = s.new_key("other", 100)
        job = s.submit_job(replay_body(), mine)
        self.assertError(s.get_job(job["id"], other), 404, "job_not_found")
        self.assertError(s.cancel_job(job["id"], other), 404,
                         "job_not_found")
        events = s.open_events(job["id"], other)
        try:
            self.assertEqual(events.status, 404)
        finally:
            events.close()
        listed = s.list_jobs(other).json["data"]
        self.assertEqual(listed["jobs"], [])
        self.assertFalse(listed["has_more"])
        for status in ("queued", "running", "succeeded"):
            r = s.list_jobs(other, status=status)
            self.assertEqual(r.json["data"]["jobs"], [], status)
        # The other account's DELETE did not touch it.
        self.assertJob(s.wait_job(job["id"], key=mine), "succeeded")
        self.assertError(s.get_job(job["id"], other), 404, "job_not_found")
        self.assertCredits(mine, 96)
        self.assertCredits(other, 100)
        self.assertEqual([j["id"] for j in
                          s.list_jobs(mine).json["data"]["jobs"]],
                         [job["id"]])

    def test_a_second_key_of_the_same_account_sees_its_jobs(self):
        s = self.server
        first = s.new_key("team", 100)
        account = None
        for line in s.cli("keys", "list").stdout.splitlines():
            if line.split() and first.startswith(line.split()[1]):
                account = line.split()[4]
        self.assertIsNotNone(account)
        second = s.cli("keys", "create", "--name", "team2", "--credits",
                       "0", "--account", account).stdout.strip()
        job = s.submit_job(replay_body(), first)
        self.assertEqual(s.job(job["id"], second)["id"], job["id"])
        self.assertEqual([j["id"] for j in
                          s.list_jobs(second).json["data"]["jobs"]],
                         [job["id"]])
        s.wait_job(job["id"], key=second)


class ListJobs(JobChecks, ReplayServerTest):
    replay_delay_ms = 0

    def submit_many(self, key, n):
        ids = []
        for _ in range(n):
            ids.append(self.server.submit_job(replay_body(), key)["id"])
            time.sleep(0.003)
        for job_id in ids:
            self.server.wait_job(job_id, key=key)
        return ids

    def test_pages_newest_first_with_a_cursor(self):
        s = self.server
        key = s.new_key("pages", 100)
        ids = self.submit_many(key, 7)
        seen = []
        cursor = None
        pages = 0
        while True:
            query = {"limit": 3}
            if cursor is not None:
                query["cursor"] = cursor
            data = self.assertSuccessEnvelope(s.list_jobs(key, **query), 200)
            self.assertEqual(set(data), {"jobs", "has_more", "next_cursor"})
            pages += 1
            for job in data["jobs"]:
                self.assertJob(job, "succeeded")
            seen += [j["id"] for j in data["jobs"]]
            if not data["has_more"]:
                self.assertIsNone(data["next_cursor"])
                break
            self.assertEqual(len(data["jobs"]), 3)
            self.assertIsInstance(data["next_cursor"], str)
            cursor = data["next_cursor"]
            self.assertLess(pages, 10)
        self.assertEqual(pages, 3)
        self.assertEqual(seen, list(reversed(ids)))
        # A cursor stays valid while newer jobs arrive.
        first = s.list_jobs(key, limit=3).json["data"]
        self.submit_many(key, 1)
        rest = s.list_jobs(key, limit=100,
                           cursor=first["next_cursor"]).json["data"]
        self.assertEqual([j["id"] for j in rest["jobs"]],
                         list(reversed(ids))[3:])
        # Pages of a status filter.
        page = s.list_jobs(key, status="succeeded", limit=5).json["data"]
        self.assertTrue(page["has_more"])
        more = s.list_jobs(key, status="succeeded", limit=5,
                           cursor=page["next_cursor"]).json["data"]
        self.assertFalse(more["has_more"])
        self.assertEqual(len(page["jobs"]) + len(more["jobs"]), 8)
        self.assertEqual(len({j["id"] for j in page["jobs"] + more["jobs"]}),
                         8)

    def test_default_and_largest_page(self):
        s = self.server
        key = s.new_key("many", 100)
        ids = self.submit_many(key, 22)
        data = s.list_jobs(key).json["data"]
        self.assertEqual([j["id"] for j in data["jobs"]],
                         list(reversed(ids))[:20])
        self.assertTrue(data["has_more"])
        data = s.list_jobs(key, limit=100).json["data"]
        self.assertEqual(len(data["jobs"]), 22)
        self.assertFalse(data["has_more"])
        self.assertIsNone(data["next_cursor"])
        data = s.list_jobs(key, limit=1).json["data"]
        self.assertEqual([j["id"] for j in data["jobs"]], [ids[-1]])
        self.assertTrue(data["has_more"])

    def test_status_filter(self):
        s = self.server
        key = s.new_key("filter", 400)
        succeeded = self.submit_many(key, 2)
        failed = s.submit_job(request_body(files=[BROKEN_PNG_URL]), key)
        s.wait_job(failed["id"], key=key)
        running = s.submit_job(request_body(**LONG_LOCAL), key)
        s.wait_job(running["id"], ("running",), key)
        queued_or_running = s.submit_job(request_body(**LONG_LOCAL), key)
        cancelled = s.submit_job(request_body(**LONG_LOCAL), key)
        self.assertEqual(s.cancel_job(cancelled["id"], key).status, 200)

        def ids(status):
            r = s.list_jobs(key, status=status, limit=100)
            data = self.assertSuccessEnvelope(r, 200)
            for job in data["jobs"]:
                self.assertEqual(job["status"], status, job)
            return [j["id"] for j in data["jobs"]]

        try:
            self.assertEqual(ids("succeeded"), list(reversed(succeeded)))
            self.assertEqual(ids("failed"), [failed["id"]])
            self.assertEqual(ids("cancelled"), [cancelled["id"]])
            self.assertIn(running["id"], ids("running"))
            self.assertEqual(
                set(ids("running") + ids("queued")),
                {running["id"], queued_or_running["id"]})
            everything = [j["id"] for j in
                          s.list_jobs(key, limit=100).json["data"]["jobs"]]
            self.assertEqual(len(everything), 6)
        finally:
            for job in (running, queued_or_running):
                s.cancel_job(job["id"], key)
        self.assertEqual(ids("running") + ids("queued"), [])
        self.assertCredits(key, 400 - 8)

    def test_bad_query_is_422(self):
        s = self.server
        cases = [("status", "done"), ("status", ""), ("status", "Queued2"),
                 ("limit", "0"), ("limit", "101"), ("limit", "-1"),
                 ("limit", "abc"), ("limit", "1.5"), ("limit", ""),
                 ("cursor", "garbage"), ("cursor", "123"),
                 ("cursor", "1." + "z" * 36)]
        for name, value in cases:
            with self.subTest(name=name, value=value):
                r = s.list_jobs(**{name: value})
                err = self.assertError(r, 422, "validation_error")
                self.assertEqual(err.get("field"), name, err)


class CancelRace(JobChecks, ReplayServerTest):
    """Cancels that race the end of the job: each job is either cancelled
    and refunded (200) or finished and charged (409), never both."""
    replay_delay_ms = 300

    def test_cancel_racing_completion(self):
        s = self.server
        key = s.new_key("race", 100)
        jobs = [s.submit_job(replay_body(), key) for _ in range(12)]
        answers = {}

        def cancel(i, job):
            time.sleep(0.22 + 0.02 * i)
            answers[job["id"]] = s.cancel_job(job["id"], key)

        threads = [threading.Thread(target=cancel, args=(i, j))
                   for i, j in enumerate(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        succeeded = 0
        for job in jobs:
            r = answers[job["id"]]
            final = s.wait_job(job["id"], key=key)
            if r.status == 200:
                self.assertEqual(r.json["data"]["status"], "cancelled", r)
                self.assertEqual(final["status"], "cancelled", final)
            else:
                self.assertError(r, 409, "job_finished")
                self.assertIn(final["status"], ("succeeded",), final)
                succeeded += 1
        time.sleep(0.5)
        self.assertCredits(key, 100 - 4 * succeeded)
        self.assertLedgerOk()


class PreferWait(JobChecks, ReplayServerTest):
    """Every replay job takes 1.6 s."""
    replay_delay_ms = 1600

    def timed(self, key, headers):
        started = time.time()
        r = self.server.generate(replay_body(), key, headers)
        return r, time.time() - started

    def test_wait_shorter_than_the_job_answers_202(self):
        s = self.server
        key = s.new_key("w1", 100)
        r, took = self.timed(key, {"Prefer": "wait=1"})
        job = self.assertJob(self.assertSuccessEnvelope(r, 202))
        self.assertIn(job["status"], ("queued", "running"))
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3)
        self.assertEqual(r.header("Preference-Applied"), "wait=1")
        self.assertEqual(r.header("Location"), "/v1/ula/jobs/" + job["id"])
        self.assertEqual(r.header("X-Vidgate-Job"), job["id"])
        self.assertEqual(r.header("X-Vidgate-Seed"), str(job["seed"]))
        self.assertJob(s.wait_job(job["id"], key=key), "succeeded")
        self.assertCredits(key, 96)

    def test_wait_zero_answers_at_once(self):
        s = self.server
        key = s.new_key("w0", 100)
        r, took = self.timed(key, {"Prefer": "wait=0"})
        job = self.assertJob(self.assertSuccessEnvelope(r, 202))
        self.assertLess(took, 1.0)
        self.assertIn(job["status"], ("queued", "running"))

    def test_wait_longer_than_the_job_answers_200(self):
        s = self.server
        key = s.new_key("w10", 100)
        r, took = self.timed(key, {"Prefer": "wait=10"})
        data = self.assertSuccessEnvelope(r, 200)
        self.assertEqual(set(data), RESULT_FIELDS)
        self.assertGreaterEqual(took, 1.5)
        self.assertLess(took, 9)
        self.assertEqual(data["id"], r.header("X-Vidgate-Job"))
        self.assertJob(s.job(data["id"], key), "succeeded")
        self.assertCredits(key, 96)

    def test_no_preference_waits_for_the_video(self):
        s = self.server
        key = s.new_key("wsync", 100)
        r, took = self.timed(key, {})
        data = self.assertSuccessEnvelope(r, 200)
        self.assertEqual(set(data), RESULT_FIELDS)
        self.assertGreaterEqual(took, 1.5)
        self.assertIsNone(r.header("Preference-Applied"))

    def test_respond_async_wins_over_wait(self):
        s = self.server
        key = s.new_key("wboth", 100)
        r, took = self.timed(key, {"Prefer": "respond-async, wait=10"})
        job = self.assertJob(self.assertSuccessEnvelope(r, 202))
        self.assertLess(took, 1.0)
        self.assertIn(job["status"], ("queued", "running"))


class MaxSyncWait(JobChecks, ReplayServerTest):
    """The server waits at most 1 s for any synchronous answer."""
    replay_delay_ms = 2000
    job_settings = {"max_sync_wait_s": 1}

    def test_synchronous_request_is_capped(self):
        s = self.server
        key = s.new_key("cap", 100)
        started = time.time()
        r = s.generate(replay_body(), key)
        took = time.time() - started
        job = self.assertJob(self.assertSuccessEnvelope(r, 202))
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 2.2)
        self.assertEqual(r.header("Location"), "/v1/ula/jobs/" + job["id"])
        self.assertEqual(r.header("X-Vidgate-Job"), job["id"])
        self.assertJob(s.wait_job(job["id"], key=key), "succeeded")
        self.assertCredits(key, 96)

    def test_a_longer_prefer_wait_is_capped_too(self):
        s = self.server
        key = s.new_key("cap10", 100)
        started = time.time()
        r = s.generate(replay_body(), key, {"Prefer": "wait=10"})
        took = time.time() - started
        job = self.assertJob(self.assertSuccessEnvelope(r, 202))
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 2.2)
        self.assertIn(job["status"], ("queued", "running"))

    def test_a_shorter_prefer_wait_still_applies(self):
        s = self.server
        key = s.new_key("cap0", 100)
        started = time.time()
        r = s.generate(replay_body(), key, {"Prefer": "wait=0"})
        job = self.assertJob(self.assertSuccessEnvelope(r, 202))
        self.assertLess(time.time() - started, 0.9)
        self.assertIn(job["status"], ("queued", "running"))


class Disconnect(JobChecks, ReplayServerTest):
    replay_delay_ms = 1500

    def hang_up(self, key, body, after=0.3):
        """Sends a synchronous generate and closes the socket without
        reading the answer."""
        import json
        payload = json.dumps(body).encode()
        sock = socket.create_connection(("127.0.0.1", self.server.port))
        sock.sendall(b"POST /v1/ula/generate-video HTTP/1.1\r\n"
                     b"Host: 127.0.0.1\r\n"
                     b"Authorization: Bearer " + key.encode() + b"\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
        time.sleep(after)
        sock.close()

    def test_client_disconnect_does_not_cancel_a_replay_job(self):
        s = self.server
        key = s.new_key("gone", 100)
        self.hang_up(key, replay_body())
        job_id = self.newest_job_id(key)
        job = self.assertJob(s.wait_job(job_id, key=key), "succeeded")
        self.assertEqual(job["attempts"], 1)
        self.assertCredits(key, 96)
        # Nothing more happens later.
        time.sleep(0.5)
        self.assertCredits(key, 96)
        self.assertEqual(len(s.list_jobs(key).json["data"]["jobs"]), 1)
        self.assertLedgerOk()

    def test_client_disconnect_does_not_cancel_a_local_render(self):
        s = self.server
        key = s.new_key("gone2", 100)
        body = request_body(resolution="720P", duration=8)
        self.hang_up(key, body, after=0.1)
        job_id = self.newest_job_id(key)
        job = self.assertJob(s.wait_job(job_id, key=key), "succeeded")
        self.assertCredits(key, 100 - price(body))
        got = s.fetch_url(job["data"]["videos"][0]["url"])
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.header("Content-Type"), "video/mp4")
        self.assertLedgerOk()


if __name__ == "__main__":
    unittest.main()
