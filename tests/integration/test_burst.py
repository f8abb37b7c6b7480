"""A burst of async submits whose clients hang up at once: every job the
server committed must run. The client closing its connection while its
job was being committed used to leave the committed job queued forever
(the request resumed on a dead connection, and the step that queues the
job never ran); wrk's last requests at the end of a run hit exactly
that."""
import json
import socket
import threading
import time

from vg import ReplayServerTest, replay_body, wait_for


class AbandonedSubmits(ReplayServerTest):
    limit_settings = {"requests_per_minute": 0, "unfinished_jobs_per_key": 0}

    def post_and_hang_up(self, key, n):
        body = json.dumps(replay_body()).encode()
        head = ("POST /v1/ula/generate-video HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\n"
                "Prefer: respond-async\r\nContent-Length: %d\r\n\r\n"
                % (key, len(body))).encode()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", self.server.port))
            s.sendall(head + body)
            # Gone before the answer: no read, the socket closed.
            s.close()

    def jobs_by_status(self, key):
        counts = {}
        cursor = None
        while True:
            q = {"limit": 100}
            if cursor:
                q["cursor"] = cursor
            r = self.server.list_jobs(key, **q)
            self.assertEqual(r.status, 200, r)
            data = r.json["data"]
            for job in data["jobs"]:
                counts[job["status"]] = counts.get(job["status"], 0) + 1
            cursor = data.get("next_cursor")
            if not cursor:
                return counts

    def test_every_committed_job_runs_though_its_client_left(self):
        key = self.server.new_key("burst", 100000)
        threads = [threading.Thread(target=self.post_and_hang_up,
                                    args=(key, 150)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        time.sleep(1)

        def settled():
            c = self.jobs_by_status(key)
            return c.get("queued", 0) + c.get("running", 0) == 0

        wait_for(settled, timeout=60, interval=0.5)
        counts = self.jobs_by_status(key)
        self.assertGreater(counts.get("succeeded", 0), 0, counts)
        self.assertEqual(set(counts), {"succeeded"}, counts)
