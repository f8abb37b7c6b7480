"""Credits: exact charges, 403 with nothing charged, refunds for failed
renders, the vendor's get-credits shape and `vidgate ledger check`."""
import base64
import json
import re
import sqlite3
import os
import unittest

from catalog import CONFIG
from vg import Server, ServerTest, check_video, request_body


class Credits(ServerTest):
    config = CONFIG

    def new_key(self, credits):
        return self.server.cli("keys", "create", "--name", "buyer",
                               "--credits", credits).stdout.strip()

    def test_get_credits_has_the_vendor_shape(self):
        s = self.server
        r = s.request("GET", "/v1/developer/%s/get-credits" % s.developer_id,
                      headers=s.auth())
        self.assertEqual(r.status, 200, r)
        body = r.json
        self.assertEqual(set(body), {"availableCredits"})
        self.assertEqual(set(body["availableCredits"]),
                         {"creditBalance", "lastUpdated"})
        self.assertIsInstance(body["availableCredits"]["creditBalance"],
                              (int, float))
        self.assertRegex(body["availableCredits"]["lastUpdated"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

    def test_another_accounts_credits_are_404(self):
        s = self.server
        other = self.new_key("1")
        r = s.request("GET", "/v1/developer/%s/get-credits" % s.developer_id,
                      headers=s.auth(other))
        self.assertEqual(r.status, 404)

    def test_get_credits_needs_auth(self):
        r = self.server.request("GET", "/v1/developer/me/get-credits")
        self.assertEqual(r.status, 401)

    def test_exact_charges(self):
        key = self.new_key("100")
        cases = [
            (dict(), 4.0),                                   # 1 * 4
            (dict(generate_audio=True), 6.0),                # * 1.5
            (dict(service_tier="flex"), 2.0),                # * 0.5
            (dict(resolution="720P", duration=5, generate_audio=True,
                  service_tier="flex"), 7.5),                # 2*5*1.5*.5
        ]
        for overrides, price in cases:
            with self.subTest(**{k: str(v) for k, v in overrides.items()}):
                before = self.server.credits(key)
                body = request_body(**overrides)
                r = self.server.generate(body, key)
                check_video(self, self.server, r, body)
                after = self.server.credits(key)
                self.assertAlmostEqual(before - after, price, places=3)

    def test_balance_too_small_is_403_and_charges_nothing(self):
        key = self.new_key("3.5")
        r = self.server.generate(request_body(), key)   # costs 4
        self.assertEqual(r.status, 403, r)
        self.assertEqual(r.json["error"]["code"], "insufficient_credits")
        self.assertEqual(self.server.credits(key), 3.5)

    def test_exact_balance_is_enough(self):
        key = self.new_key("4")
        body = request_body()
        r = self.server.generate(body, key)
        check_video(self, self.server, r, body)
        self.assertEqual(self.server.credits(key), 0)

    def test_failed_render_is_refunded(self):
        key = self.new_key("10")
        # PNG magic (passes the upload check) but nothing decodable behind.
        broken = b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20
        url = "data:image/png;base64," + base64.b64encode(broken).decode()
        r = self.server.generate(request_body(files=[url]), key)
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json["error"]["code"], "invalid_image")
        self.assertEqual(self.server.credits(key), 10)

    def test_ledger_check_passes_then_catches_tampering(self):
        s = self.server
        p = s.cli("ledger", "check")
        self.assertEqual(p.returncode, 0, p.stdout)
        db = sqlite3.connect(os.path.join(s.data, "vidgate.db"))
        with db:
            db.execute("UPDATE accounts SET balance = balance + 1 "
                       "WHERE id = ?", (s.developer_id,))
        try:
            p = s.cli("ledger", "check", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(s.developer_id, p.stdout)
        finally:
            with db:
                db.execute("UPDATE accounts SET balance = balance - 1 "
                           "WHERE id = ?", (s.developer_id,))
            db.close()
        self.assertEqual(s.cli("ledger", "check").returncode, 0)


class StorageFailure(unittest.TestCase):
    def test_unexpected_failure_is_500_logged_and_refunded(self):
        s = Server(config=CONFIG).start()
        try:
            # A file where the videos folder belongs: storing fails.
            with open(os.path.join(s.data, "videos"), "w") as f:
                f.write("in the way")
            before = s.credits()
            r = s.generate(request_body())
            self.assertEqual(r.status, 500, r)
            self.assertEqual(r.json["api_details"]["api_status"], "failure")
            self.assertEqual(s.credits(), before)
            rid = r.header("X-Request-Id")
            errors = [json.loads(line) for line in s.log().splitlines()
                      if line.startswith("{") and '"error"' in line]
            self.assertTrue(any(e.get("request_id") == rid
                                and e.get("cause") for e in errors),
                            errors)
            self.assertEqual(s.cli("ledger", "check").returncode, 0)
        finally:
            s.cleanup()


class Cli(ServerTest):
    def test_keys_create_prints_the_key_alone(self):
        p = self.server.cli("keys", "create", "--name", "ci", "--credits",
                            "12.5")
        self.assertRegex(p.stdout, r"^vg_[A-Za-z0-9_-]{43}\n$")
        key = p.stdout.strip()
        self.assertEqual(self.server.credits(key), 12.5)

    def test_keys_are_stored_only_as_hashes(self):
        key = self.server.cli("keys", "create", "--name", "hashed",
                              "--credits", "1").stdout.strip()
        with open(os.path.join(self.server.data, "vidgate.db"), "rb") as f:
            self.assertNotIn(key.encode(), f.read())
        wal = os.path.join(self.server.data, "vidgate.db-wal")
        if os.path.exists(wal):
            with open(wal, "rb") as f:
                self.assertNotIn(key.encode(), f.read())

    def test_credits_add_grants(self):
        s = self.server
        before = s.credits()
        p = s.cli("credits", "add", "--account", s.developer_id, "--amount",
                  "2.25")
        self.assertAlmostEqual(s.credits() - before, 2.25, places=3)
        self.assertEqual(float(p.stdout), s.credits())

    def test_bad_cli_input_is_refused(self):
        s = self.server
        for args in (["credits", "add", "--account", s.developer_id,
                      "--amount", "-1"],
                     ["credits", "add", "--account", s.developer_id,
                      "--amount", "1.2345"],
                     ["credits", "add", "--account", "nope", "--amount",
                      "1"],
                     ["keys", "create", "--credits", "5"],
                     ["keys", "revoke", "no-such-key"],
                     ["frobnicate"]):
            with self.subTest(args=args):
                p = s.cli(*args, check=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertTrue(p.stderr.strip())

    def test_keys_list_shows_keys_without_secrets(self):
        key = self.server.cli("keys", "create", "--name", "listed",
                              "--credits", "1").stdout.strip()
        out = self.server.cli("keys", "list").stdout
        self.assertIn("listed", out)
        self.assertNotIn(key, out)
        self.assertTrue(re.search(r"active", out))


if __name__ == "__main__":
    unittest.main()
