"""GET /v1/ula/jobs/{id}/events: a job's progress as Server-Sent Events,
read line by line with http.client: retry first, progress events with
growing ids, the final event with the job, then the server closes the
stream. Last-Event-ID resumes; other accounts get 404."""
import threading
import time
import unittest
import uuid

from vg import (JOB_FIELDS, BROKEN_PNG_URL, ReplayServerTest,
                replay_body, request_body, result_without_link_query)

# ~2-3 s alone on two cores: long enough for several progress events.
MEDIUM_LOCAL = dict(resolution="720P", aspect_ratio="16:9", duration=8)
LONG_LOCAL = dict(resolution="1080P", aspect_ratio="16:9", duration=12,
                  generate_audio=True)


class Events(ReplayServerTest):
    """Replay jobs take 1.5 s, one at a time."""
    replay_delay_ms = 1500
    replay_concurrency = 1

    def open(self, job_id, key=None, last_event_id=None):
        stream = self.server.open_events(job_id, key, last_event_id,
                                         timeout=60)
        self.addCleanup(stream.close)
        return stream

    def assertStreamHead(self, stream):
        self.assertEqual(stream.status, 200)
        self.assertTrue(stream.header("Content-Type").startswith(
            "text/event-stream"), stream.headers)

    def assertStartsWithRetry(self, stream):
        lines = [l for l in stream.lines if not l.startswith(":")]
        self.assertTrue(lines, "nothing read")
        self.assertEqual(lines[0], "retry: 2000", stream.lines[:5])

    def assertProgressEvents(self, job_id, events, after=-1):
        """Progress events: ids strictly growing (and > after), 0 only
        while queued, 1 + progress while running."""
        last = after
        progress = 0
        for ev in events:
            self.assertEqual(ev["event"], "progress", ev)
            n = int(ev["id"])
            self.assertGreater(n, last, events)
            last = n
            data = ev["data"]
            self.assertEqual(set(data), {"id", "status", "progress"}, ev)
            self.assertEqual(data["id"], job_id)
            self.assertIn(data["status"], ("queued", "running"))
            if data["status"] == "queued":
                self.assertEqual(n, 0, ev)
                self.assertEqual(data["progress"], 0, ev)
            else:
                self.assertEqual(n, 1 + data["progress"], ev)
            self.assertGreaterEqual(data["progress"], progress)
            self.assertLessEqual(data["progress"], 100)
            progress = data["progress"]

    def assertFinal(self, ev, status, job_id, key=None):
        self.assertEqual(ev["id"], "1000", ev)
        self.assertEqual(ev["event"], status, ev)
        job = ev["data"]
        self.assertIsInstance(job, dict, ev)
        self.assertEqual(set(job), JOB_FIELDS)
        self.assertEqual(job["id"], job_id)
        self.assertEqual(job["status"], status)
        stored = self.server.job(job_id, key)
        for k in ("status", "progress", "seed", "created", "started",
                  "finished", "attempts", "status_url", "events_url",
                  "error", "model", "provider"):
            self.assertEqual(job[k], stored[k], k)
        if status == "succeeded":
            self.assertEqual(job["progress"], 100)
            self.assertEqual(result_without_link_query(job["data"]),
                             result_without_link_query(stored["data"]))
            got = self.server.fetch_url(job["data"]["videos"][0]["url"])
            self.assertEqual(got.status, 200)
        return job

    def test_stream_of_a_local_render(self):
        s = self.server
        key = s.new_key("sse", 100)
        job = s.submit_job(request_body(**MEDIUM_LOCAL), key)
        stream = self.open(job["id"], key)
        self.assertStreamHead(stream)
        started = time.time()
        events = stream.read_all()
        self.assertLess(time.time() - started, 50)
        self.assertTrue(stream.ended)
        self.assertStartsWithRetry(stream)
        self.assertEqual(stream.retry, "2000")
        self.assertGreaterEqual(len(events), 3, events)
        self.assertProgressEvents(job["id"], events[:-1])
        running = [e for e in events[:-1]
                   if e["data"]["status"] == "running"]
        self.assertGreaterEqual(len(running), 2,
                                "no progress reported while rendering: %r"
                                % events)
        self.assertFinal(events[-1], "succeeded", job["id"], key)
        for comment in stream.comments:
            self.assertTrue(comment.startswith(":"))

    def test_queued_job_starts_with_event_0(self):
        s = self.server
        key = s.new_key("sseq", 100)
        blocker = s.submit_job(replay_body(), key)
        job = s.submit_job(replay_body(), key)
        self.assertEqual(s.job(job["id"], key)["status"], "queued")
        stream = self.open(job["id"], key)
        self.assertStreamHead(stream)
        first = stream.next_event()
        self.assertEqual(first["id"], "0", first)
        self.assertEqual(first["event"], "progress")
        self.assertEqual(first["data"], {"id": job["id"], "status": "queued",
                                         "progress": 0})
        rest = stream.read_all()
        self.assertProgressEvents(job["id"], rest[:-1], after=0)
        self.assertFinal(rest[-1], "succeeded", job["id"], key)
        self.assertEqual(s.job(blocker["id"], key)["status"], "succeeded")

    def test_resume_midway_with_last_event_id(self):
        s = self.server
        key = s.new_key("sser", 100)
        job = s.submit_job(request_body(**dict(MEDIUM_LOCAL, duration=12)),
                           key)
        stream = self.open(job["id"], key)
        seen = []
        while True:
            ev = stream.next_event()
            self.assertIsNotNone(ev, "the job ended before it was running")
            self.assertNotEqual(ev["id"], "1000", seen + [ev])
            seen.append(ev)
            if int(ev["id"]) >= 3:
                break
        stream.close()
        last = int(seen[-1]["id"])
        again = self.open(job["id"], key, last_event_id=last)
        self.assertStreamHead(again)
        events = again.read_all()
        self.assertStartsWithRetry(again)
        self.assertTrue(events)
        self.assertProgressEvents(job["id"], events[:-1], after=last)
        self.assertFinal(events[-1], "succeeded", job["id"], key)

    def test_finished_job_sends_just_the_final_event(self):
        s = self.server
        key = s.new_key("ssef", 100)
        r = s.generate(request_body(), key)
        self.assertEqual(r.status, 200, r)
        job_id = r.header("X-Vidgate-Job")
        for last in (None, 0, 5, 999):
            with self.subTest(last_event_id=last):
                stream = self.open(job_id, key, last)
                self.assertStreamHead(stream)
                events = stream.read_all()
                self.assertStartsWithRetry(stream)
                self.assertEqual(len(events), 1, events)
                self.assertFinal(events[0], "succeeded", job_id, key)

    def test_last_event_id_1000_on_a_finished_job_sends_nothing(self):
        s = self.server
        key = s.new_key("ssee", 100)
        r = s.generate(request_body(), key)
        self.assertEqual(r.status, 200, r)
        stream = self.open(r.header("X-Vidgate-Job"), key, 1000)
        self.assertStreamHead(stream)
        started = time.time()
        self.assertEqual(stream.read_all(), [])
        self.assertLess(time.time() - started, 5, "the stream did not end")
        self.assertTrue(stream.ended)

    def test_failed_job_ends_with_failed(self):
        s = self.server
        key = s.new_key("ssefail", 100)
        job = s.submit_job(request_body(files=[BROKEN_PNG_URL]), key)
        events = self.open(job["id"], key).read_all()
        self.assertProgressEvents(job["id"], events[:-1])
        final = self.assertFinal(events[-1], "failed", job["id"], key)
        self.assertEqual(final["error"]["code"], "invalid_image")
        self.assertIsNone(final["data"])

    def test_cancelled_job_ends_with_cancelled(self):
        s = self.server
        key = s.new_key("ssec", 200)
        job = s.submit_job(request_body(**LONG_LOCAL), key)
        stream = self.open(job["id"], key)
        first = stream.next_event()
        self.assertEqual(first["event"], "progress", first)
        r = s.cancel_job(job["id"], key)
        self.assertEqual(r.status, 200, r)
        started = time.time()
        rest = stream.read_all()
        self.assertLess(time.time() - started, 10)
        self.assertProgressEvents(job["id"], [first] + rest[:-1])
        final = self.assertFinal(rest[-1], "cancelled", job["id"], key)
        self.assertEqual(final["error"]["code"], "cancelled")

    def test_several_streams_of_one_job(self):
        s = self.server
        key = s.new_key("ssem", 100)
        job = s.submit_job(replay_body(), key)
        results = [None] * 4

        def follow(i):
            stream = s.open_events(job["id"], key, timeout=30)
            try:
                results[i] = stream.read_all()
            finally:
                stream.close()

        threads = [threading.Thread(target=follow, args=(i,))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for events in results:
            self.assertTrue(events)
            self.assertFinal(events[-1], "succeeded", job["id"], key)

    def test_other_account_and_unknown_job_are_404(self):
        s = self.server
        mine = s.new_key("ssemine", 100)
        other = s.new_key("sseother", 100)
        job = s.submit_job(replay_body(), mine)
        for job_id, key in ((job["id"], other), (str(uuid.uuid4()), mine)):
            with self.subTest(job_id=job_id):
                stream = self.open(job_id, key)
                self.assertEqual(stream.status, 404)
                body = stream.response.read()
                self.assertIn(b"job_not_found", body)
        self.assertEqual(s.wait_job(job["id"], key=mine)["status"],
                         "succeeded")


if __name__ == "__main__":
    unittest.main()
