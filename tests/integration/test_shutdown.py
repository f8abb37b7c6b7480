"""Shutdown: SIGTERM drains running renders within the grace period, and
cancels (and refunds) what is left, leaving no partial file behind."""
import glob
import os
import threading
import time
import unittest

from catalog import CONFIG
from vg import Server, check_video, request_body


def wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


class Shutdown(unittest.TestCase):
    def start_render(self, server, body):
        result = {}

        def run():
            result["r"] = server.generate(body)

        thread = threading.Thread(target=run)
        thread.start()
        parts = os.path.join(server.data, "tmp", "*.part")
        self.assertTrue(wait_for(lambda: glob.glob(parts)),
                        "the render never started")
        return thread, result

    def test_sigterm_cancels_a_render_and_refunds_it(self):
        s = Server(config=dict(CONFIG, shutdown_grace_s=0)).start()
        try:
            before = s.credits()
            thread, result = self.start_render(s, request_body(
                resolution="1080P", aspect_ratio="16:9", duration=12,
                generate_audio=True))
            self.assertEqual(s.stop(), 0)
            thread.join(60)
            r = result["r"]
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json["error"]["code"], "server_shutdown")
            self.assertEqual(glob.glob(os.path.join(s.data, "tmp", "*")), [])
            self.assertEqual(glob.glob(os.path.join(s.data, "videos", "*")),
                             [])
            self.assertEqual(s.cli("ledger", "check").returncode, 0)
            s.start()
            self.assertEqual(s.credits(), before)
        finally:
            s.cleanup()

    def test_sigterm_lets_a_running_render_finish(self):
        s = Server(config=dict(CONFIG, shutdown_grace_s=60)).start()
        try:
            body = request_body(resolution="720P", duration=4)
            thread, result = self.start_render(s, body)
            s.proc.terminate()
            thread.join(120)
            self.assertEqual(s.proc.wait(60), 0)
            self.assertEqual(result["r"].status, 200, result["r"])
            self.assertEqual(len(glob.glob(os.path.join(s.data, "videos",
                                                        "*.mp4"))), 1)
            s.start()
            check_video(self, s, result["r"], body)
        finally:
            s.cleanup()


if __name__ == "__main__":
    unittest.main()
