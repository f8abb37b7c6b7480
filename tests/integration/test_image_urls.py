"""Reference images given as URLs in a JSON body's "files": fetched and
rendered where the operator allows it (here plain http on loopback, as
tests have no TLS), refused on loopback by default, refused outright when
fetching is off. Fetched bytes meet the same checks as uploads."""
import http.server
import threading
import unittest

from catalog import CONFIG
from media import make_image
from vg import ServerTest, check_video, request_body


class ImageServer:
    """Serves fixed answers on 127.0.0.1 and records the paths asked."""

    def __init__(self, routes):
        self.routes = routes  # path -> (status, content type, bytes)
        self.paths = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.paths.append(self.path)
                status, ctype, body = server.routes.get(
                    self.path, (404, "text/plain", b"not found"))
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

    def url(self, path, scheme="http"):
        return "%s://127.0.0.1:%d%s" % (scheme, self.port, path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def image_body(url, **overrides):
    return request_body(files=[url], **overrides)


class WithImageServer(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.images = ImageServer({
            "/x.png": (200, "image/png", make_image("png", size="64x48")),
            "/notes.png": (200, "image/png", b"just some text\n"),
        })
        try:
            super().setUpClass()
        except Exception:
            cls.images.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
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
