"""Idempotency-Key on POST /v1/ula/generate-video: the same key and request
give the same job, charged once (also when 8 arrive at once); the same key
with another request is 409; keys are per account; bad keys are 400."""
import subprocess
import tempfile
import os
import threading
import time
import unittest
import uuid

from vg import (BROKEN_PNG_URL, ReplayServerTest, multipart, replay_body,
                request_body)


def make_png(width=64, height=48, pattern="testsrc"):
    fd, path = tempfile.mkstemp(suffix=".png")
    os.close(fd)
    try:
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        "%s=size=%dx%d" % (pattern, width, height),
                        "-frames:v", "1", path], check=True, timeout=60)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def form_fields(body):
    return {k: (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in body.items()}


class Idempotency(ReplayServerTest):
    """Replay jobs take 1 s."""
    replay_delay_ms = 1000

    def idem(self, key=None):
        return {"Idempotency-Key": key or "test-" + uuid.uuid4().hex}

    def assertReplayed(self, r, replayed):
        if replayed:
            self.assertEqual(r.header("Idempotent-Replayed"), "true",
                             r.headers)
        else:
            self.assertIn(r.header("Idempotent-Replayed"), (None, "false"),
                          r.headers)

    def job_count(self, key):
        r = self.server.list_jobs(key, limit=100)
        self.assertEqual(r.status, 200, r)
        return len(r.json["data"]["jobs"])

    def test_same_key_and_body_give_the_same_job(self):
        s = self.server
        acct = s.new_key("idem", 100)
        h = self.idem()
        body = replay_body(seed=-1)
        first = s.submit(body, acct, h)
        self.assertEqual(first.status, 202, first)
        self.assertReplayed(first, False)
        job = first.json["data"]
        second = s.submit(body, acct, h)
        self.assertEqual(second.status, 202, second)
        self.assertReplayed(second, True)
        self.assertEqual(second.json["data"]["id"], job["id"])
        self.assertEqual(second.header("X-Vidgate-Job"), job["id"])
        self.assertEqual(second.header("X-Vidgate-Seed"),
                         first.header("X-Vidgate-Seed"))
        self.assertEqual(second.header("Location"), first.header("Location"))
        self.assertAlmostEqual(s.credits(acct), 96, places=3)
        s.wait_job(job["id"], key=acct)
        # After the job ended: still the same job, still charged once.
        third = s.submit(body, acct, h)
        self.assertIn(third.status, (200, 202), third)
        self.assertReplayed(third, True)
        self.assertEqual(third.header("X-Vidgate-Job"), job["id"])
        self.assertEqual(third.json["data"]["id"], job["id"])
        # A synchronous retry of the same request gets the video.
        fourth = s.generate(body, acct, h)
        self.assertEqual(fourth.status, 200, fourth)
        self.assertReplayed(fourth, True)
        self.assertEqual(fourth.json["data"]["id"], job["id"])
        self.assertAlmostEqual(s.credits(acct), 96, places=3)
        self.assertEqual(self.job_count(acct), 1)

    def test_synchronous_retry_gets_the_same_video(self):
        s = self.server
        acct = s.new_key("idemsync", 100)
        h = self.idem()
        first = s.generate(replay_body(), acct, h)
        self.assertEqual(first.status, 200, first)
        second = s.generate(replay_body(), acct, h)
        self.assertEqual(second.status, 200, second)
        self.assertReplayed(second, True)
        self.assertEqual(second.json["data"]["id"], first.json["data"]["id"])
        self.assertEqual(second.json["data"]["videos"][0]["url"].split("?")[0],
                         first.json["data"]["videos"][0]["url"].split("?")[0])
        self.assertAlmostEqual(s.credits(acct), 96, places=3)
        self.assertEqual(self.job_count(acct), 1)

    def test_same_key_with_another_body_is_409(self):
        s = self.server
        acct = s.new_key("idemconf", 100)
        h = self.idem()
        first = s.submit(replay_body(), acct, h)
        self.assertEqual(first.status, 202, first)
        for other in (replay_body(prompt="something else"),
                      replay_body(seed=5),
                      replay_body(duration=5),
                      replay_body(service_tier="flex"),
                      replay_body(webhook_url="http://93.184.216.34/x")):
            with self.subTest(other=other):
                r = s.submit(other, acct, h)
                self.assertEqual(r.status, 409, r)
                self.assertEqual(r.json["error"]["code"],
                                 "idempotency_conflict")
                self.assertEqual(r.json["api_details"]["api_status"],
                                 "failure")
        self.assertAlmostEqual(s.credits(acct), 96, places=3)
        self.assertEqual(self.job_count(acct), 1)
        job = s.wait_job(first.json["data"]["id"], key=acct)
        self.assertEqual(job["status"], "succeeded")

    def test_prefer_is_not_part_of_the_request(self):
        s = self.server
        acct = s.new_key("idemprefer", 100)
        h = self.idem()
        first = s.submit(replay_body(), acct, h)
        self.assertEqual(first.status, 202, first)
        second = s.generate(replay_body(), acct, h)   # synchronous
        self.assertEqual(second.status, 200, second)
        self.assertReplayed(second, True)
        self.assertEqual(second.json["data"]["id"], first.json["data"]["id"])
        self.assertAlmostEqual(s.credits(acct), 96, places=3)

    def test_keys_are_per_account(self):
        s = self.server
        one = s.new_key("idemone", 100)
        two = s.new_key("idemtwo", 100)
        h = self.idem("shared-key-between-accounts")
        a = s.submit(replay_body(), one, h)
        b = s.submit(replay_body(), two, h)
        self.assertEqual((a.status, b.status), (202, 202), (a, b))
        self.assertReplayed(b, False)
        self.assertNotEqual(a.json["data"]["id"], b.json["data"]["id"])
        self.assertAlmostEqual(s.credits(one), 96, places=3)
        self.assertAlmostEqual(s.credits(two), 96, places=3)
        self.assertEqual(s.get_job(a.json["data"]["id"], two).status, 404)

    def test_without_a_key_every_request_is_a_new_job(self):
        s = self.server
        acct = s.new_key("idemnone", 100)
        a = s.submit(replay_body(seed=1), acct)
        b = s.submit(replay_body(seed=1), acct)
        self.assertNotEqual(a.json["data"]["id"], b.json["data"]["id"])
        self.assertAlmostEqual(s.credits(acct), 92, places=3)

    def test_invalid_keys_are_400_and_charge_nothing(self):
        s = self.server
        acct = s.new_key("idembad", 100)
        for bad in ("", "k" * 256, "abc\x01def", "tab\there", "del\x7f"):
            with self.subTest(key=repr(bad)[:30]):
                r = s.submit(replay_body(), acct, {"Idempotency-Key": bad})
                self.assertEqual(r.status, 400, r)
                self.assertEqual(r.json["api_details"]["api_status"],
                                 "failure")
        self.assertAlmostEqual(s.credits(acct), 100, places=3)
        self.assertEqual(self.job_count(acct), 0)
        longest = s.submit(replay_body(), acct, {"Idempotency-Key": "k" * 255})
        self.assertEqual(longest.status, 202, longest)
        self.assertEqual(s.submit(replay_body(), acct,
                                  {"Idempotency-Key": "k" * 255})
                         .json["data"]["id"], longest.json["data"]["id"])

    def concurrent(self, acct, body, headers, n=8, sync=False):
        barrier = threading.Barrier(n)
        results = [None] * n

        def run(i):
            barrier.wait()
            if sync:
                results[i] = self.server.generate(body, acct, headers)
            else:
                results[i] = self.server.submit(body, acct, headers)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    def test_concurrent_duplicates_make_one_job(self):
        s = self.server
        acct = s.new_key("idemrace", 100)
        results = self.concurrent(acct, replay_body(), self.idem())
        for r in results:
            self.assertEqual(r.status, 202, r)
        ids = {r.json["data"]["id"] for r in results}
        self.assertEqual(len(ids), 1, ids)
        replayed = [r.header("Idempotent-Replayed") == "true"
                    for r in results]
        self.assertEqual(replayed.count(False), 1, replayed)
        self.assertAlmostEqual(s.credits(acct), 96, places=3)
        self.assertEqual(self.job_count(acct), 1)
        s.wait_job(ids.pop(), key=acct)
        self.assertAlmostEqual(s.credits(acct), 96, places=3)
        self.assertEqual(s.cli("ledger", "check", check=False).returncode, 0)

    def test_concurrent_synchronous_duplicates_make_one_job(self):
        """No Prefer header and no max_sync_wait_s: every duplicate waits
        for the video, replays included. (Eight rounds, as the window for
        a wrong early answer is narrow.)"""
        s = self.server
        wrong = []
        for round in range(8):
            acct = s.new_key("idemrace2-%d" % round, 100)
            results = self.concurrent(acct, replay_body(), self.idem(),
                                      sync=True)
            ids = {r.json["data"]["id"] for r in results}
            self.assertEqual(len(ids), 1, ids)
            self.assertAlmostEqual(s.credits(acct), 96, places=3)
            self.assertEqual(self.job_count(acct), 1)
            wrong += ["round %d: %d (job %s) Idempotent-Replayed=%s "
                      "X-Request-Id=%s" % (
                          round, r.status, r.json["data"].get("status"),
                          r.header("Idempotent-Replayed"),
                          r.header("X-Request-Id"))
                      for r in results if r.status != 200]
        self.assertEqual(wrong, [], "synchronous requests answered before "
                         "their job ended")

    def test_concurrent_requests_with_two_bodies_and_one_key(self):
        s = self.server
        acct = s.new_key("idemrace3", 100)
        h = self.idem()
        bodies = [replay_body(prompt="first"), replay_body(prompt="second")]
        barrier = threading.Barrier(8)
        results = [None] * 8

        def run(i):
            barrier.wait()
            results[i] = s.submit(bodies[i % 2], acct, h)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        accepted = [i for i, r in enumerate(results) if r.status == 202]
        refused = [i for i, r in enumerate(results) if r.status != 202]
        self.assertTrue(accepted, results)
        winner = accepted[0] % 2
        self.assertEqual([i % 2 for i in accepted], [winner] * 4, results)
        for i in refused:
            self.assertEqual(results[i].status, 409, results[i])
            self.assertEqual(results[i].json["error"]["code"],
                             "idempotency_conflict")
        self.assertEqual(len({results[i].json["data"]["id"]
                              for i in accepted}), 1)
        self.assertAlmostEqual(s.credits(acct), 96, places=3)
        self.assertEqual(self.job_count(acct), 1)

    def test_multipart_with_another_boundary_is_the_same_request(self):
        s = self.server
        acct = s.new_key("idemform", 100)
        h = self.idem()
        png = make_png()
        fields = form_fields(replay_body(seed=9))

        def send(image):
            body, ctype = multipart(fields, [("files", "ref.png", image,
                                              "image/png")])
            headers = dict(s.auth(acct), **h)
            headers["Content-Type"] = ctype
            headers["Prefer"] = "respond-async"
            return s.request("POST", "/v1/ula/generate-video", body,
                             headers)

        first = send(png)
        self.assertEqual(first.status, 202, first)
        second = send(png)
        self.assertEqual(second.status, 202, second)
        self.assertReplayed(second, True)
        self.assertEqual(second.json["data"]["id"], first.json["data"]["id"])
        other = send(make_png(pattern="smptebars"))
        self.assertEqual(other.status, 409, other)
        self.assertEqual(other.json["error"]["code"], "idempotency_conflict")
        self.assertAlmostEqual(s.credits(acct), 96, places=3)
        self.assertEqual(self.job_count(acct), 1)

    def test_a_failed_job_is_replayed_not_retried(self):
        s = self.server
        acct = s.new_key("idemfail", 100)
        h = self.idem()
        body = request_body(files=[BROKEN_PNG_URL])
        first = s.generate(body, acct, h)
        self.assertEqual(first.status, 422, first)
        self.assertEqual(first.json["error"]["code"], "invalid_image")
        second = s.generate(body, acct, h)
        self.assertEqual(second.status, 422, second)
        self.assertEqual(second.json["error"]["code"], "invalid_image")
        self.assertReplayed(second, True)
        self.assertEqual(self.job_count(acct), 1)
        self.assertAlmostEqual(s.credits(acct), 100, places=3)


class IdempotencyExpiry(ReplayServerTest):
    """With jobs.idempotency_ttl_s = 1 a key is forgotten after a second."""
    job_settings = {"idempotency_ttl_s": 1}

    def test_an_expired_key_makes_a_new_job(self):
        s = self.server
        acct = s.new_key("idemttl", 100)
        h = {"Idempotency-Key": "ttl-" + uuid.uuid4().hex}
        first = s.submit(replay_body(), acct, h)
        self.assertEqual(first.status, 202, first)
        s.wait_job(first.json["data"]["id"], key=acct)
        time.sleep(2.1)
        second = s.submit(replay_body(), acct, h)
        self.assertEqual(second.status, 202, second)
        self.assertNotEqual(second.json["data"]["id"],
                            first.json["data"]["id"])
        self.assertAlmostEqual(s.credits(acct), 92, places=3)


if __name__ == "__main__":
    unittest.main()
