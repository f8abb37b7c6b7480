"""Crash safety: after kill -9 and a restart on the same data directory,
queued jobs run, interrupted ones start again (attempts + 1), finished ones
are untouched, nothing is charged twice, pending webhooks are delivered and
`vidgate ledger check` passes. SIGTERM drains: running jobs may finish
within shutdown_grace_s; the rest stay queued (not refunded) for the next
start."""
import glob
import json
import os
import shutil
import tempfile
import time
import unittest

from vg import (BROKEN_PNG_URL, Server, WebhookReceiver, ffprobe,
                jobs_config, make_mp4, price, replay_body, request_body,
                webhook_signed_by, wait_for)

LONG_LOCAL = request_body(resolution="1080P", aspect_ratio="16:9",
                          duration=6, generate_audio=True)       # 36 credits
MEDIUM_LOCAL = request_body(resolution="720P", aspect_ratio="16:9",
                            duration=8)                          # 16 credits


class CrashTest(unittest.TestCase):
    def server(self, **settings):
        media = tempfile.mkdtemp(prefix="vgmedia-")
        self.addCleanup(shutil.rmtree, media, True)
        mp4 = make_mp4(os.path.join(media, "replay.mp4"))
        settings.setdefault("providers", {"local": {"concurrency": 1}})
        s = Server(config=jobs_config(mp4, **settings)).start()
        self.addCleanup(s.cleanup)
        return s

    def wait_progress(self, s, job_id, key, at_least=5, timeout=60):
        job = wait_for(lambda: (lambda j: j if j["status"] == "running" and
                                j["progress"] >= at_least else None)(
                                    s.job(job_id, key)), timeout, 0.1)
        self.assertIsNotNone(job, s.job(job_id, key))
        return job

    def assertUnchanged(self, before, after):
        for k in ("status", "progress", "created", "started", "finished",
                  "attempts", "error", "seed"):
            self.assertEqual(after[k], before[k], k)
        if before["data"] is not None:
            self.assertEqual(after["data"]["videos"][0]["url"].split("?")[0],
                             before["data"]["videos"][0]["url"].split("?")[0])

    def assertVideo(self, s, job, body):
        got = s.fetch_url(job["data"]["videos"][0]["url"])
        self.assertEqual(got.status, 200, got)
        fd, path = tempfile.mkstemp(suffix=".mp4")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(got.body)
            info = ffprobe(path)
        finally:
            os.unlink(path)
        video = [st for st in info["streams"] if st["codec_type"] == "video"]
        self.assertEqual(len(video), 1)
        fps = body.get("fps", 24)
        self.assertEqual(int(video[0]["nb_read_frames"]),
                         fps * body["duration"])

    def assertLedgerOk(self, s):
        p = s.cli("ledger", "check", check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("0 mismatched", p.stdout)


class Kill9(CrashTest):
    def test_every_state_survives_kill_9(self):
        receiver = WebhookReceiver(default=204)
        self.addCleanup(receiver.close)
        s = self.server(delay_ms=4000, concurrency=1,
                        webhooks={"allow_private_addresses": True,
                                  "retry_base_ms": 200, "timeout_s": 2})
        key = s.new_key("crash", 300)
        secret = s.webhook_secret(key)

        # succeeded
        r = s.generate(request_body(), key)
        self.assertEqual(r.status, 200, r)
        succeeded = s.job(r.header("X-Vidgate-Job"), key)
        # failed (a broken image), refunded
        failed = s.submit_job(request_body(files=[BROKEN_PNG_URL]), key)
        failed = s.wait_job(failed["id"], key=key)
        self.assertEqual(failed["status"], "failed")
        # a replay job running, another cancelled while queued behind it
        replay_running = s.submit_job(replay_body(), key)
        s.wait_job(replay_running["id"], ("running",), key)
        cancelled = s.submit_job(replay_body(generate_audio=True), key)
        self.assertEqual(s.cancel_job(cancelled["id"], key).status, 200)
        cancelled = s.job(cancelled["id"], key)
        # a long local render running (with a webhook), two queued
        running = s.submit_job(dict(LONG_LOCAL,
                                    webhook_url=receiver.url("/crash")), key)
        queued = s.submit_job(request_body(), key,
                              {"Idempotency-Key": "crash-queued"})
        queued_flex = s.submit_job(request_body(service_tier="flex"), key)
        interrupted = self.wait_progress(s, running["id"], key)
        self.assertEqual(interrupted["attempts"], 1)
        self.assertEqual(s.job(queued["id"], key)["status"], "queued")
        self.assertEqual(s.job(queued_flex["id"], key)["status"], "queued")
        self.assertEqual(s.job(replay_running["id"], key)["status"],
                         "running")
        charged = (price(request_body()) + price(replay_body()) +
                   price(LONG_LOCAL) + price(request_body()) +
                   price(request_body(service_tier="flex")))
        self.assertAlmostEqual(s.credits(key), 300 - charged, places=3)

        s.kill()
        self.assertEqual(receiver.deliveries, [])
        s.restart()
        # The event stream of a job queued before the crash ends with it.
        stream = s.open_events(queued_flex["id"], key, timeout=90)
        self.addCleanup(stream.close)
        self.assertEqual(stream.status, 200)
        events = stream.read_all()
        self.assertTrue(events)
        self.assertEqual((events[-1]["id"], events[-1]["event"]),
                         ("1000", "succeeded"), events[-3:])

        for job in (running, queued, queued_flex, replay_running):
            done = s.wait_job(job["id"], key=key, timeout=90)
            self.assertEqual(done["status"], "succeeded", done)
        again = s.job(running["id"], key)
        self.assertEqual(again["attempts"], 2, again)
        self.assertVideo(s, again, LONG_LOCAL)
        for job in (queued, queued_flex):
            done = s.job(job["id"], key)
            self.assertEqual(done["attempts"], 1, done)
            self.assertVideo(s, done, request_body())
        self.assertGreaterEqual(s.job(replay_running["id"], key)["attempts"],
                                1)
        self.assertUnchanged(succeeded, s.job(succeeded["id"], key))
        self.assertUnchanged(failed, s.job(failed["id"], key))
        self.assertUnchanged(cancelled, s.job(cancelled["id"], key))
        self.assertEqual(s.job(cancelled["id"], key)["status"], "cancelled")
        self.assertAlmostEqual(s.credits(key), 300 - charged, places=3)
        # The idempotency key outlived the crash.
        again = s.submit(request_body(), key,
                         {"Idempotency-Key": "crash-queued"})
        self.assertIn(again.status, (200, 202), again)
        self.assertEqual(again.header("X-Vidgate-Job"), queued["id"])
        self.assertEqual(again.header("Idempotent-Replayed"), "true")
        self.assertAlmostEqual(s.credits(key), 300 - charged, places=3)
        self.assertLedgerOk(s)

        # The interrupted job's webhook comes once, after it succeeded.
        self.assertIsNotNone(receiver.wait(lambda ds: len(ds) >= 1, 20))
        time.sleep(1)
        self.assertEqual(len(receiver.deliveries), 1, receiver.deliveries)
        d = receiver.deliveries[0]
        self.assertTrue(webhook_signed_by(secret, d))
        doc = json.loads(d["body"])
        self.assertEqual(doc["type"], "job.succeeded")
        self.assertEqual(doc["data"]["id"], running["id"])
        self.assertEqual(doc["data"]["attempts"], 2)

    def test_kill_9_twice_in_a_row(self):
        """A restart that is itself killed before the job ends: still one
        charge, and the job ends."""
        s = self.server()
        key = s.new_key("crash2", 100)
        job = s.submit_job(MEDIUM_LOCAL, key)
        self.wait_progress(s, job["id"], key, at_least=2)
        s.kill()
        s.restart()
        self.wait_progress(s, job["id"], key, at_least=2)
        s.kill()
        s.restart()
        done = s.wait_job(job["id"], key=key, timeout=60)
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(done["attempts"], 3)
        self.assertAlmostEqual(s.credits(key), 100 - price(MEDIUM_LOCAL),
                               places=3)
        self.assertVideo(s, done, MEDIUM_LOCAL)
        self.assertLedgerOk(s)


class GiveUp(CrashTest):
    def test_a_job_interrupted_max_attempts_times_fails_and_is_refunded(self):
        s = self.server(jobs={"max_attempts": 2})
        key = s.new_key("giveup", 100)
        job = s.submit_job(MEDIUM_LOCAL, key)
        self.wait_progress(s, job["id"], key, at_least=2)
        s.kill()
        s.restart()
        again = self.wait_progress(s, job["id"], key, at_least=2)
        self.assertEqual(again["attempts"], 2)
        s.kill()
        s.restart()
        done = s.wait_job(job["id"], key=key, timeout=30)
        self.assertEqual(done["status"], "failed", done)
        self.assertEqual(done["attempts"], 2)
        self.assertIsNotNone(done["error"])
        self.assertIsNone(done["data"])
        self.assertAlmostEqual(s.credits(key), 100, places=3)
        self.assertLedgerOk(s)


class Drain(CrashTest):
    def test_sigterm_keeps_unfinished_jobs_queued_for_the_next_start(self):
        s = self.server(shutdown_grace_s=1)
        key = s.new_key("drain", 200)
        running = s.submit_job(LONG_LOCAL, key)
        queued = s.submit_job(request_body(), key)
        self.wait_progress(s, running["id"], key, at_least=2)
        stream = s.open_events(running["id"], key, timeout=30)
        self.addCleanup(stream.close)
        self.assertEqual(stream.status, 200)
        self.assertIsNotNone(stream.next_event())
        started = time.time()
        self.assertEqual(s.stop(), 0, s.log(3000))
        self.assertLess(time.time() - started, 15)
        # The open event stream ended with the server, without claiming
        # that the job ended.
        rest = stream.read_all()
        self.assertTrue(stream.ended)
        self.assertNotIn("1000", [e["id"] for e in rest], rest)
        # Nothing was refunded.
        s.restart()
        self.assertAlmostEqual(s.credits(key), 200 - 36 - 4, places=3)
        for job in (running, queued):
            done = s.wait_job(job["id"], key=key, timeout=90)
            self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(s.job(running["id"], key)["attempts"], 2)
        self.assertEqual(s.job(queued["id"], key)["attempts"], 1)
        self.assertVideo(s, s.job(running["id"], key), LONG_LOCAL)
        self.assertAlmostEqual(s.credits(key), 200 - 36 - 4, places=3)
        self.assertEqual(glob.glob(os.path.join(s.data, "tmp", "*.part")),
                         [])
        self.assertLedgerOk(s)

    def test_sigterm_lets_a_running_job_finish_within_the_grace(self):
        s = self.server(shutdown_grace_s=60)
        key = s.new_key("drain2", 200)
        running = s.submit_job(MEDIUM_LOCAL, key)
        queued = s.submit_job(request_body(), key)
        self.wait_progress(s, running["id"], key, at_least=2)
        self.assertEqual(s.stop(), 0, s.log(3000))
        stopped = time.time()
        s.restart()
        done = s.job(running["id"], key)
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(done["attempts"], 1)
        self.assertLessEqual(done["finished"], stopped)
        later = s.wait_job(queued["id"], key=key, timeout=60)
        self.assertEqual(later["status"], "succeeded", later)
        self.assertEqual(later["attempts"], 1)
        self.assertGreaterEqual(later["started"], int(stopped))
        self.assertAlmostEqual(s.credits(key), 200 - 16 - 4, places=3)
        self.assertLedgerOk(s)


if __name__ == "__main__":
    unittest.main()
