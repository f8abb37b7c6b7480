"""Reference images given as URLs in a JSON body's "files": fetched and
rendered where the operator allows it (here plain http on loopback, as
tests have no TLS), refused on loopback by default, refused outright when
fetching is off. Fetched bytes meet the same checks as uploads, and a
slow image never holds an HTTP thread."""
import http.server
import os
import signal
import threading
import time
import unittest

from catalog import CONFIG
from media import make_image
from vg import ServerTest, check_video, request_body


class ImageServer:
    """Serves fixed answers on 127.0.0.1 and records the paths asked."""

    def __init__(self, routes):
        # path -> (status, content type, bytes[, seconds to stall first])
        self.routes = routes
        self.paths = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.paths.append(self.path)
                status, ctype, body, *stall = server.routes.get(
                    self.path, (404, "text/plain", b"not found"))
                if stall:
                    time.sleep(stall[0])
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def wait_for(self, path, timeout=10):
        """Waits until path has been asked for."""
        deadline = time.time() + timeout
        while path not in self.paths and time.time() < deadline:
            time.sleep(0.02)
        return path in self.paths

    def url(self, path, scheme="http"):
        return "%s://127.0.0.1:%d%s" % (scheme, self.port, path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def image_body(url, **overrides):
    return request_body(files=[url], **overrides)


def fetched_files(server, timeout=2):
    """The fetched images left in the server's temporary directory, once
    the requests that had them have ended (just after their answer)."""
    tmp = os.path.join(server.data, "tmp")
    deadline = time.time() + timeout
    while True:
        left = [n for n in os.listdir(tmp) if n.startswith("fetch-")]
        if not left or time.time() > deadline:
            return left
        time.sleep(0.05)


class WithImageServer(ServerTest):
    @classmethod
    def start_fixture(cls):
        cls.images = ImageServer({
            "/x.png": (200, "image/png", make_image("png", size="64x48")),
            "/notes.png": (200, "image/png", b"just some text\n"),
            "/slow.png": (200, "image/png", make_image("png", size="64x48"),
                          3),
            "/stuck.png": (200, "image/png",
                           make_image("png", size="64x48"), 20),
        })

    @classmethod
    def stop_fixture(cls):
        cls.images.close()

    def assert_error(self, r, status, code, needle):
        self.assertEqual(r.status, status, r)
        error = r.json["error"]
        self.assertEqual(error["code"], code, r)
        self.assertEqual(error["field"], "files", r)
        self.assertIn(needle, error["message"])


class FetchingAllowed(WithImageServer):
    config = dict(CONFIG, images={"allow_http": True,
                                  "allow_private_addresses": True})

    def test_image_url_is_fetched_and_rendered(self):
        body = image_body(self.images.url("/x.png"))
        check_video(self, self.server, self.server.generate(body), body)
        self.assertIn("/x.png", self.images.paths)

    def test_fetched_bytes_must_be_an_image(self):
        r = self.server.generate(image_body(self.images.url("/notes.png")))
        self.assert_error(r, 415, "unsupported_file_type", "PNG, JPEG")

    def test_missing_image_is_422_with_the_status(self):
        r = self.server.generate(image_body(self.images.url("/gone.png")))
        self.assert_error(r, 422, "image_fetch_failed", "404")
        self.assertIn("files[0]", r.json["error"]["message"])

    def test_failed_fetch_names_its_element(self):
        r = self.server.generate(request_body(files=[
            self.images.url("/x.png"), self.images.url("/gone2.png")]))
        self.assert_error(r, 422, "image_fetch_failed", "404")
        self.assertIn("files[1]", r.json["error"]["message"])

    def test_fetched_images_are_not_left_behind(self):
        self.server.generate(image_body(self.images.url("/notes.png")))
        self.server.generate(request_body(files=[
            self.images.url("/x.png"), self.images.url("/gone3.png")]))
        self.assertEqual(fetched_files(self.server), [])

    def test_earlier_field_errors_come_without_fetching(self):
        seen = len(self.images.paths)
        r = self.server.generate(image_body(self.images.url("/x.png"),
                                            duration="4"))
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json["error"]["field"], "duration")
        self.assertEqual(len(self.images.paths), seen)


class FetchingHoldsNoThread(WithImageServer):
    """With one HTTP thread, a request whose image is slow to arrive must
    leave the server free to answer others."""
    config = dict(CONFIG, http_threads=1,
                  images={"allow_http": True,
                          "allow_private_addresses": True})

    def test_server_answers_while_an_image_is_fetched(self):
        body = image_body(self.images.url("/slow.png"))
        results = []
        started = time.time()
        worker = threading.Thread(
            target=lambda: results.append(self.server.generate(body)))
        worker.start()
        self.assertTrue(self.images.wait_for("/slow.png"))
        self.assertServesPromptly()
        # Still stalled: the answers above came while it was.
        self.assertLess(time.time() - started, 2.5)
        worker.join(300)
        self.assertGreaterEqual(time.time() - started, 3)
        check_video(self, self.server, results[0], body)


class StoppingWhileFetching(WithImageServer):
    """A server told to stop does not wait out a slow image: the request
    gets its answer and nothing fetched is left behind."""
    config = dict(CONFIG, images={"allow_http": True,
                                  "allow_private_addresses": True,
                                  "fetch_timeout_s": 30})

    def test_stopping_answers_the_fetching_request(self):
        results = []
        worker = threading.Thread(target=lambda: results.append(
            self.server.generate(image_body(
                self.images.url("/stuck.png")))))
        worker.start()
        self.assertTrue(self.images.wait_for("/stuck.png"))
        time.sleep(0.2)
        started = time.time()
        self.server.proc.send_signal(signal.SIGTERM)
        worker.join(30)
        self.assertEqual(self.server.proc.wait(30), 0)
        self.assertLess(time.time() - started, 10)
        self.assert_error(results[0], 503, "server_shutdown", "stopping")
        self.assertIn("files[0]", results[0].json["error"]["message"])
        self.assertEqual(fetched_files(self.server), [])


class DefaultPolicy(WithImageServer):
    config = CONFIG

    def test_loopback_https_url_is_refused(self):
        seen = len(self.images.paths)
        r = self.server.generate(
            image_body(self.images.url("/x.png", scheme="https")))
        self.assert_error(r, 422, "invalid_url", "loopback")
        self.assertIn("non-public", r.json["error"]["message"])
        self.assertEqual(len(self.images.paths), seen)

    def test_plain_http_url_is_refused(self):
        seen = len(self.images.paths)
        r = self.server.generate(image_body(self.images.url("/x.png")))
        self.assert_error(r, 422, "invalid_url", "https://")
        self.assertIn("plain http://", r.json["error"]["message"])
        self.assertIn("images.allow_http", r.json["error"]["message"])
        self.assertEqual(len(self.images.paths), seen)


class FetchingOff(WithImageServer):
    config = dict(CONFIG, images={"allow_urls": False})

    def test_image_url_is_refused_without_fetching(self):
        seen = len(self.images.paths)
        r = self.server.generate(image_body(self.images.url("/x.png")))
        self.assert_error(r, 422, "validation_error", "not enabled")
        self.assertEqual(len(self.images.paths), seen)


if __name__ == "__main__":
    unittest.main()
