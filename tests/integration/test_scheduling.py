"""Scheduling and limits: with one slot per provider, queued "default"
jobs start before queued "flex" ones; a flex job that has waited
flex_max_wait_s counts as default (by submit time); requests per minute
and unfinished jobs per key answer 429 with Retry-After; per-key
overrides with `vidgate keys limits`."""
import threading
import time
import unittest
import uuid

from vg import (REPLAY_MODEL, ReplayServerTest, replay_body, request_body,
                wait_for)


def start_order(server, key, ids, timeout=60):
    """Polls the key's jobs and returns `ids` in the order they left the
    queue (first seen running or finished)."""
    order = []

    def poll():
        r = server.list_jobs(key, limit=100)
        assert r.status == 200, r
        for job in reversed(r.json["data"]["jobs"]):
            if job["id"] in ids and job["id"] not in order and \
                    job["status"] != "queued":
                order.append(job["id"])
        return len(order) == len(ids)

    wait_for(poll, timeout, 0.03)
    return order


def submit_burst(server, key, threads, each):
    """Submits replay jobs from several threads at once; their ids."""
    ids, lock = [], threading.Lock()

    def submit():
        for _ in range(each):
            job = server.submit_job(replay_body(), key)
            with lock:
                ids.append(job["id"])

    workers = [threading.Thread(target=submit) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return ids


def names(order, labels):
    return [labels.get(i, i) for i in order]


class TierOrder(ReplayServerTest):
    """One replay slot (0.5 s per job) and one local render at a time."""
    replay_delay_ms = 500
    replay_concurrency = 1
    provider_settings = {"local": {"concurrency": 1}}

    def run_tiers(self, key, long_body, short_body):
        s = self.server
        a = s.submit_job(long_body, key)
        s.wait_job(a["id"], ("running",), key)
        labels = {a["id"]: "A"}
        for label, tier in (("F1", "flex"), ("F2", "flex"),
                            ("D1", "default"), ("D2", "default")):
            job = s.submit_job(dict(short_body, service_tier=tier), key)
            self.assertEqual(job["service_tier"], tier)
            labels[job["id"]] = label
        order = start_order(s, key, list(labels))
        return names(order, labels)

    def test_default_before_flex_on_the_replay_provider(self):
        key = self.server.new_key("tiers", 100)
        order = self.run_tiers(key, replay_body(), replay_body())
        self.assertEqual(order, ["A", "D1", "D2", "F1", "F2"])

    def test_default_before_flex_on_the_local_provider(self):
        key = self.server.new_key("tierslocal", 200)
        order = self.run_tiers(
            key, request_body(resolution="720P", aspect_ratio="16:9",
                              duration=4),
            request_body())
        self.assertEqual(order, ["A", "D1", "D2", "F1", "F2"])

    def test_providers_have_separate_slots(self):
        s = self.server
        key = s.new_key("slots", 200)
        local = s.submit_job(request_body(resolution="720P",
                                          aspect_ratio="16:9", duration=8),
                             key)
        s.wait_job(local["id"], ("running",), key)
        replay = s.submit_job(replay_body(), key)
        # The replay job does not wait for the local render.
        job = s.wait_job(replay["id"], key=key, timeout=20)
        self.assertEqual(job["status"], "succeeded")
        self.assertIn(s.job(local["id"], key)["status"], ("running",
                                                          "succeeded"))
        s.wait_job(local["id"], key=key)


class Aging(ReplayServerTest):
    """One replay slot, 1.5 s per job; flex jobs age after 1 s."""
    replay_delay_ms = 1500
    replay_concurrency = 1
    job_settings = {"flex_max_wait_s": 1}

    def test_an_old_flex_job_goes_before_a_later_default_one(self):
        s = self.server
        key = s.new_key("aging", 100)
        a = s.submit_job(replay_body(), key)
        s.wait_job(a["id"], ("running",), key)
        f1 = s.submit_job(replay_body(service_tier="flex"), key)
        time.sleep(1.1)
        d1 = s.submit_job(replay_body(), key)
        f2 = s.submit_job(replay_body(service_tier="flex"), key)
        labels = {a["id"]: "A", f1["id"]: "F1", d1["id"]: "D1",
                  f2["id"]: "F2"}
        order = start_order(s, key, list(labels))
        self.assertEqual(names(order, labels), ["A", "F1", "D1", "F2"])


class LineInTheStore(ReplayServerTest):
    """One replay slot (150 ms per job) and a line of 4 in memory: the
    other queued jobs wait in the database only and are loaded as the
    line shortens, oldest first, so none is lost or overtaken."""
    replay_delay_ms = 150
    replay_concurrency = 1
    job_settings = {"queued_in_memory": 4}

    def test_jobs_past_the_line_in_memory_all_run_in_order(self):
        s = self.server
        key = s.new_key("inthestore", 1000)
        ids = [s.submit_job(replay_body(), key)["id"] for _ in range(20)]
        order = start_order(s, key, ids)
        self.assertEqual(order, ids)
        for job_id in ids:
            job = s.wait_job(job_id, key=key, timeout=60)
            self.assertEqual(job["status"], "succeeded", job)

    def test_a_concurrent_burst_past_the_line_all_runs(self):
        s = self.server
        key = s.new_key("burstinthestore", 1000)
        ids = submit_burst(s, key, 4, 6)
        self.assertEqual(len(set(ids)), 24)
        for job_id in ids:
            job = s.wait_job(job_id, key=key, timeout=60)
            self.assertEqual(job["status"], "succeeded", job)


class LineInTheStoreWideSlot(ReplayServerTest):
    """Six jobs at a time (300 ms each) and a line of 4 in memory: most of
    a burst waits in the database while the slot is full, and every job
    of it must still be loaded and run."""
    replay_delay_ms = 300
    replay_concurrency = 6
    job_settings = {"queued_in_memory": 4}

    def test_a_burst_wider_than_the_line_all_runs(self):
        s = self.server
        key = s.new_key("wideslot", 1000)
        ids = submit_burst(s, key, 4, 10)
        self.assertEqual(len(set(ids)), 40)
        for job_id in ids:
            job = s.wait_job(job_id, key=key, timeout=60)
            self.assertEqual(job["status"], "succeeded", job)


class LinesPerProvider(ReplayServerTest):
    """One replay slot (600 ms per job) with a backlog past its line of 4
    in memory: a job for another provider, with room, does not wait
    behind that backlog in the database."""
    replay_delay_ms = 600
    replay_concurrency = 1
    job_settings = {"queued_in_memory": 4}

    def test_a_backlog_on_one_provider_does_not_hold_up_another(self):
        s = self.server
        key = s.new_key("perprovider", 1000)
        backlog = [s.submit_job(replay_body(), key)["id"] for _ in range(16)]
        local = s.submit_job(request_body(), key)["id"]
        done = s.wait_job(local, key=key, timeout=60)
        self.assertEqual(done["status"], "succeeded", done)
        # It ran before most of the backlog had even started (with one
        # line for all providers it waited for the line in memory to
        # drain and then behind every older replay job).
        waiting = [j for j in backlog
                   if s.job(j, key)["status"] == "queued"]
        self.assertGreaterEqual(len(waiting), 6, waiting)
        # ...and the backlog all runs, in order.
        self.assertEqual(start_order(s, key, backlog, timeout=60), backlog)
        for job_id in backlog:
            job = s.wait_job(job_id, key=key, timeout=60)
            self.assertEqual(job["status"], "succeeded", job)


# Served by replay, but first routed to a provider no config defines: its
# jobs are stored under that provider, which has no line of its own.
STRAY = {k: v for k, v in REPLAY_MODEL.items() if k != "provider"}
STRAY.update(name="stray-video", providers=[
    {"provider": "nowhere", "model": "x"},
    {"provider": "replay", "model": "replay"}])


class LineOfStrays(ReplayServerTest):
    """Jobs stored under a provider that is not configured (a fallback
    route serves them) still wait in the database past the line and all
    run, in order."""
    replay_delay_ms = 150
    replay_concurrency = 1
    job_settings = {"queued_in_memory": 4}

    @classmethod
    def setUpClass(cls):
        from catalog import CONFIG
        cls.extra_config = {"models": list(CONFIG["models"]) +
                            [REPLAY_MODEL, STRAY]}
        super().setUpClass()

    def test_stray_jobs_past_the_line_all_run_in_order(self):
        s = self.server
        key = s.new_key("strays", 1000)
        ids = [s.submit_job(replay_body(model="stray-video"), key)["id"]
               for _ in range(14)]
        self.assertEqual(start_order(s, key, ids), ids)
        for job_id in ids:
            job = s.wait_job(job_id, key=key, timeout=60)
            self.assertEqual(job["status"], "succeeded", job)


class RateLimit(ReplayServerTest):
    limit_settings = {"requests_per_minute": 5}

    def assertRateLimited(self, r):
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json["api_details"]["api_status"], "failure")
        self.assertEqual(r.json["error"]["code"], "rate_limited")
        retry = r.header("Retry-After")
        self.assertIsNotNone(retry, r.headers)
        self.assertTrue(retry.isdigit(), retry)
        self.assertTrue(1 <= int(retry) <= 60, retry)

    def balance(self, key):
        """The key's balance from `keys list` (the API is rate limited)."""
        for line in self.server.cli("keys", "list").stdout.splitlines():
            cols = line.split()
            if len(cols) > 5 and key.startswith(cols[1]):
                return float(cols[5])
        raise AssertionError("key not listed")

    def test_requests_per_minute_per_key(self):
        s = self.server
        key = s.new_key("rpm", 100)
        other = s.new_key("rpm2", 100)
        for i in range(5):
            r = s.list_jobs(key)
            self.assertEqual(r.status, 200, (i, r))
        self.assertRateLimited(s.list_jobs(key))
        self.assertRateLimited(s.request(
            "GET", "/v1/developer/me/get-credits", headers=s.auth(key)))
        self.assertRateLimited(s.request("GET", "/v1/ula/models",
                                         headers=s.auth(key)))
        self.assertRateLimited(s.request("GET", "/v1/ula/webhooks/secret",
                                         headers=s.auth(key)))
        events = s.open_events(str(uuid.uuid4()), key)
        try:
            self.assertEqual(events.status, 429)
        finally:
            events.close()
        self.assertRateLimited(s.submit(replay_body(), key))
        self.assertRateLimited(s.generate(replay_body(), key))
        self.assertAlmostEqual(self.balance(key), 100, places=3)
        # Another key, and unauthenticated routes, are not affected.
        self.assertEqual(s.list_jobs(other).status, 200)
        self.assertEqual(s.request("GET", "/healthz").status, 200)

    def test_concurrent_requests_cannot_exceed_the_limit(self):
        s = self.server
        key = s.new_key("rpmrace", 100)
        barrier = threading.Barrier(12)
        statuses = [None] * 12

        def run(i):
            barrier.wait()
            statuses[i] = s.list_jobs(key).status

        threads = [threading.Thread(target=run, args=(i,))
                   for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(statuses), [200] * 5 + [429] * 7, statuses)

    def test_tokens_count_against_their_key(self):
        s = self.server
        key = s.new_key("rpmtoken", 100)
        token = s.token(key)
        statuses = []
        for i in range(8):
            h = {"Authorization": "Bearer " + (token if i % 2 else key)}
            statuses.append(s.request("GET", "/v1/ula/jobs",
                                      headers=h).status)
        # The exchange may count as one request of the key.
        self.assertIn(statuses, ([200] * 5 + [429] * 3,
                                 [200] * 4 + [429] * 4), statuses)

    def test_retry_after_is_honoured(self):
        s = self.server
        key = s.new_key("rpm60", 100)
        s.cli("keys", "limits", s.key_id(key), "--rpm", "60")
        statuses = []
        r = None
        for _ in range(70):
            r = s.list_jobs(key)
            statuses.append(r.status)
            if r.status == 429:
                break
        self.assertEqual(r.status, 429, statuses)
        self.assertTrue(60 <= statuses.count(200) <= 62, statuses)
        self.assertRateLimited(r)
        wait = int(r.header("Retry-After"))
        self.assertLessEqual(wait, 2, "one token a second, yet Retry-After "
                             "is %d" % wait)
        time.sleep(wait)
        self.assertEqual(s.list_jobs(key).status, 200)

    def test_a_key_override_of_0_is_unlimited(self):
        s = self.server
        key = s.new_key("rpm0", 100)
        s.cli("keys", "limits", s.key_id(key), "--rpm", "0")
        for i in range(12):
            r = s.list_jobs(key)
            self.assertEqual(r.status, 200, (i, r))


class JobLimit(ReplayServerTest):
    """Replay jobs take 2 s; at most 2 unfinished jobs per key."""
    replay_delay_ms = 2000
    limit_settings = {"unfinished_jobs_per_key": 2}

    def assertTooMany(self, r):
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json["error"]["code"], "too_many_jobs")
        retry = r.header("Retry-After")
        self.assertTrue(retry is not None and retry.isdigit()
                        and int(retry) >= 1, r.headers)

    def test_unfinished_jobs_per_key(self):
        s = self.server
        key = s.new_key("jobs", 100)
        other = s.new_key("jobs2", 100)
        first = s.submit_job(replay_body(), key)
        second = s.submit_job(replay_body(), key,
                              {"Idempotency-Key": "limit-2"})
        self.assertTooMany(s.submit(replay_body(), key))
        self.assertTooMany(s.generate(replay_body(), key))
        self.assertAlmostEqual(s.credits(key), 92, places=3)
        self.assertEqual(len(s.list_jobs(key).json["data"]["jobs"]), 2)
        # A replay of an existing job is not a new job.
        again = s.submit(replay_body(), key, {"Idempotency-Key": "limit-2"})
        self.assertEqual(again.status, 202, again)
        self.assertEqual(again.json["data"]["id"], second["id"])
        # Another key has its own count.
        self.assertEqual(s.submit(replay_body(), other).status, 202)
        # Cancelling one frees a place.
        self.assertEqual(s.cancel_job(first["id"], key).status, 200)
        third = s.submit_job(replay_body(), key)
        self.assertTooMany(s.submit(replay_body(), key))
        s.wait_job(second["id"], key=key)
        s.wait_job(third["id"], key=key)
        self.assertEqual(s.submit(replay_body(), key).status, 202)
        self.assertAlmostEqual(s.credits(key), 100 - 4 * 3, places=3)


    def test_concurrent_submits_cannot_exceed_the_limit(self):
        s = self.server
        key = s.new_key("jobsrace", 100)
        barrier = threading.Barrier(8)
        results = [None] * 8

        def run(i):
            barrier.wait()
            results[i] = s.submit(replay_body(seed=i), key)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(r.status for r in results),
                         [202] * 2 + [429] * 6, results)
        self.assertAlmostEqual(s.credits(key), 92, places=3)
        self.assertEqual(len(s.list_jobs(key).json["data"]["jobs"]), 2)


class KeyOverrides(ReplayServerTest):
    """Per-key limits set with the CLI while the server runs."""
    replay_delay_ms = 2000

    def test_rpm_override(self):
        s = self.server
        key = s.new_key("ovr", 100)
        other = s.new_key("ovr2", 100)
        p = s.cli("keys", "limits", s.key_id(key), "--rpm", "3")
        self.assertIn("rpm 3", p.stdout)
        for i in range(3):
            self.assertEqual(s.list_jobs(key).status, 200, i)
        r = s.list_jobs(key)
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json["error"]["code"], "rate_limited")
        self.assertTrue((r.header("Retry-After") or "").isdigit(), r.headers)
        for i in range(6):
            self.assertEqual(s.list_jobs(other).status, 200, i)
        # Back to the server's limit.
        p = s.cli("keys", "limits", s.key_id(key), "--rpm", "default")
        self.assertIn("rpm default", p.stdout)
        self.assertEqual(s.list_jobs(key).status, 200)

    def test_jobs_override(self):
        s = self.server
        key = s.new_key("ovrjobs", 100)
        s.cli("keys", "limits", s.key_id(key), "--jobs", "1")
        job = s.submit_job(replay_body(), key)
        r = s.submit(replay_body(), key)
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json["error"]["code"], "too_many_jobs")
        self.assertIsNotNone(r.header("Retry-After"))
        self.assertAlmostEqual(s.credits(key), 96, places=3)
        s.cli("keys", "limits", s.key_id(key), "--jobs", "default")
        self.assertEqual(s.submit(replay_body(), key).status, 202)
        s.wait_job(job["id"], key=key)

    def test_bad_override_values_are_refused(self):
        s = self.server
        key_id = s.key_id(s.new_key("ovrbad", 1))
        for args in (["--rpm", "-1"], ["--rpm", "lots"], ["--jobs", "1.5"]):
            with self.subTest(args=args):
                p = s.cli("keys", "limits", key_id, *args, check=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertTrue(p.stderr.strip())
        p = s.cli("keys", "limits", "no-such-key", "--rpm", "1", check=False)
        self.assertNotEqual(p.returncode, 0)


if __name__ == "__main__":
    unittest.main()
