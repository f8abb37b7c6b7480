"""The HTTP surface: routing errors, the envelope, limits, access logs."""
import json
import os
import socket
import subprocess
import tempfile
import time
import unittest

from catalog import CONFIG, RESTRICTED
from vg import VIDGATE, ServerTest


# A model served only by a provider no config defines: listed, but not
# available, so clients can tell before they pay for a 503.
UNSERVED = {k: v for k, v in RESTRICTED.items() if k != "provider"}
UNSERVED.update(name="unserved-t2v",
                providers=[{"provider": "nowhere", "model": "x-t2v"}])


class Http(ServerTest):
    config = dict(CONFIG, limits={"max_header_bytes": 8192,
                                  "connection_timeout_s": 2},
                  models=CONFIG["models"] + [UNSERVED])

    def test_healthz(self):
        r = self.server.request("GET", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["status"], "ok")

    def test_readyz(self):
        r = self.server.request("GET", "/readyz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json, {"status": "ready"})

    def test_a_second_server_on_the_same_port_is_refused(self):
        # A port another process listens on is an error at start, not a
        # port shared with it behind the operator's back.
        with tempfile.TemporaryDirectory(prefix="vgtest-port-") as data:
            p = subprocess.run(
                [VIDGATE, "serve", "--listen",
                 "127.0.0.1:%d" % self.server.port, "--data", data],
                capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("Address already in use", p.stderr)
        self.assertEqual(self.server.request("GET", "/healthz").status, 200)

    def test_threads_are_named(self):
        # What an operator sees in top -H, ps -L or perf.
        task = "/proc/%d/task" % self.server.proc.pid
        names = set()
        for tid in os.listdir(task):
            with open(os.path.join(task, tid, "comm")) as f:
                names.add(f.read().strip())
        for name in ("MHD-worker", "vg-accept", "vg-worker", "vg-upstream",
                     "vg-store", "vg-fetcher", "vg-webhooks", "vg-timers",
                     "vg-guard", "vg-pacer"):
            self.assertIn(name, names)

    def test_unknown_route_is_404_envelope(self):
        r = self.server.request("GET", "/nope")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json["api_details"]["api_status"], "failure")

    def test_wrong_method_is_405_envelope(self):
        r = self.server.request("DELETE", "/v1/ula/models",
                                headers=self.server.auth())
        self.assertEqual(r.status, 405)
        self.assertIn("GET", r.json["error"]["message"])

    def test_models_lists_capabilities(self):
        r = self.server.request("GET", "/v1/ula/models",
                                headers=self.server.auth())
        self.assertEqual(r.status, 200)
        models = {m["name"]: m for m in r.json["data"]["models"]}
        local = models["vidgate-local"]
        for key in ("provider", "modalities", "resolutions",
                    "aspect_ratios", "durations", "fps", "audio", "price"):
            self.assertIn(key, local)
        self.assertEqual(models["seedance-v1.5-pro-t2v"]["alias_of"],
                         "vidgate-local")
        self.assertEqual(models["restricted-t2v"]["resolutions"], ["720P"])

    def test_models_list_providers_and_availability(self):
        r = self.server.request("GET", "/v1/ula/models",
                                headers=self.server.auth())
        self.assertEqual(r.status, 200)
        models = {m["name"]: m for m in r.json["data"]["models"]}
        self.assertEqual(models["vidgate-local"]["providers"], ["local"])
        self.assertIs(models["vidgate-local"]["available"], True)
        self.assertIs(models["seedance-v1.5-pro-t2v"]["available"], True)
        self.assertEqual(models["unserved-t2v"]["providers"], ["nowhere"])
        self.assertIs(models["unserved-t2v"]["available"], False)
        legacy = self.server.request("GET", "/v1/developer/get-all-models")
        entries = {m["model_name"]: m for m in legacy.json["data"]["models"]}
        self.assertIs(entries["vidgate-local"]["available"], True)
        self.assertIs(entries["unserved-t2v"]["available"], False)
        self.assertEqual(entries["unserved-t2v"]["providers"], ["nowhere"])

    def test_legacy_models_shape(self):
        r = self.server.request("GET", "/v1/developer/get-all-models")
        self.assertEqual(r.status, 200)
        names = [m["model_name"] for m in r.json["data"]["models"]]
        self.assertIn("vidgate-local", names)
        self.assertIn("seedance-v1.5-pro-t2v", names)
        for m in r.json["data"]["models"]:
            self.assertIn("description", m)

    def test_oversized_headers_are_431_envelope(self):
        r = self.server.request("GET", "/healthz",
                                headers={"X-Big": "a" * 10000})
        self.assertEqual(r.status, 431)
        self.assertEqual(r.json["error"]["code"], "headers_too_large")

    def test_huge_headers_are_refused(self):
        r = self.server.request("GET", "/healthz",
                                headers={"X-Big": "a" * 100000})
        self.assertEqual(r.status, 431)

    def test_slow_client_is_dropped(self):
        with socket.create_connection(("127.0.0.1", self.server.port)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            s.settimeout(10)
            start = time.time()
            data = s.recv(100)
            self.assertEqual(data, b"")
            self.assertLess(time.time() - start, 8)

    def test_access_log_is_json_with_request_id(self):
        r = self.server.request("GET", "/v1/ula/models?api_key=secret",
                                headers={"X-Request-Id": "log-check-1"})
        self.assertEqual(r.status, 401)
        time.sleep(0.2)
        lines = [json.loads(line) for line in self.server.log().splitlines()
                 if line.startswith("{")]
        mine = [l for l in lines if l.get("request_id") == "log-check-1"]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["status"], 401)
        self.assertEqual(mine[0]["path"], "/v1/ula/models")
        self.assertNotIn("secret", json.dumps(mine[0]))



class WaitingHoldsNoThread(ServerTest):
    """With one HTTP thread, a request waiting for its video must leave
    the server free to answer others."""
    config = dict(CONFIG, http_threads=1, render_workers=1)

    def test_server_answers_while_a_video_renders(self):
        import threading
        from vg import request_body
        results = []

        def generate():
            results.append(self.server.generate(request_body(
                resolution="720P", duration=8, aspect_ratio="16:9")))

        worker = threading.Thread(target=generate)
        worker.start()
        time.sleep(0.3)
        self.assertServesPromptly()
        worker.join(300)
        self.assertEqual(results[0].status, 200, results[0])


if __name__ == "__main__":
    unittest.main()
