"""vidgate on its PostgreSQL store: configured by the store section or
VIDGATE_DATABASE_URL, migrated by `vidgate migrate`, seeing a revocation
made by another process within a second, and riding out the database
going away (503 while it is gone, serving again by itself after).

Runs only under tests/support/postgres.sh run (ctest's
postgres.pg_backend), which starts the server and sets VG_TEST_PG_URL and
VG_TEST_PG_DIR; the rest of the integration suite runs on PostgreSQL the
same way, as the postgres.* tests.
"""
import os
import subprocess
import time
import unittest
import uuid

from vg import (PG_URL, SOURCE, Server, check_video, psql, request_body,
                wait_for)

PG_DIR = os.environ.get("VG_TEST_PG_DIR")
POSTGRES_SH = os.path.join(SOURCE, "tests", "support", "postgres.sh")
CONFIG = {"limits": {"requests_per_minute": 0}}


def fresh_database():
    name = "vgb_" + uuid.uuid4().hex[:16]
    psql(PG_URL + "postgres", "CREATE DATABASE " + name)
    return PG_URL + name


def scalar(url, sql):
    out = subprocess.run(["psql", "-qtA", url, "-c", sql], check=True,
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


class PostgresStore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not PG_URL or not PG_DIR:
            raise AssertionError("run under tests/support/postgres.sh run")

    def test_store_section_keeps_everything_in_postgres(self):
        url = fresh_database()
        cfg = dict(CONFIG, store={"backend": "postgres", "url": url,
                                  "pool_size": 3})
        # The file's url, not the harness's VIDGATE_DATABASE_URL.
        s = Server(config=cfg, env={"VIDGATE_DATABASE_URL": ""}).start()
        try:
            body = request_body(duration=4)
            r = s.generate(body)
            check_video(self, s, r, body)
            job_id = r.json["data"]["id"]
            self.assertFalse(os.path.exists(os.path.join(s.data,
                                                         "vidgate.db")))
            self.assertEqual(scalar(url, "SELECT count(*) FROM jobs"), "1")
            self.assertEqual(
                scalar(url, "SELECT state FROM jobs WHERE id = '%s'"
                       % job_id), "succeeded")
            s.stop()
            s.start()
            self.assertEqual(s.job(job_id)["status"], "succeeded")
            check = s.cli("ledger", "check")
            self.assertIn("0 mismatched", check.stdout)
        finally:
            s.cleanup()

    def test_migrate_command(self):
        url = fresh_database()
        env = dict(os.environ, VIDGATE_DATABASE_URL=url)
        vidgate = os.environ.get("VIDGATE_BIN", "../../build/vidgate")
        for _ in range(2):
            p = subprocess.run([vidgate, "--data", "/nonexistent-vg",
                                "migrate"], env=env, capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("postgres schema is up to date", p.stdout)
        self.assertEqual(scalar(url, "SELECT max(version) FROM vg_schema"),
                         "1")
        self.assertEqual(scalar(url, "SELECT count(*) FROM vg_schema"), "1")

    def test_revocation_by_another_process_within_a_second(self):
        s = Server(config=CONFIG).start()
        try:
            def status():
                return s.request("GET", "/v1/developer/me/get-credits",
                                 headers=s.auth()).status

            self.assertEqual(status(), 200)
            # The key is cached by the server now; the CLI is another
            # process on the same database.
            s.cli("keys", "revoke", s.key_id())
            started = time.time()
            self.assertTrue(wait_for(lambda: status() == 401,
                                     timeout=1.0, interval=0.02),
                            "the revoked key still works after 1 s")
            self.assertLess(time.time() - started, 1.0)
        finally:
            s.cleanup()

    def test_database_outage_answers_503_then_recovers(self):
        s = Server(config=CONFIG).start()
        try:
            first = s.submit_job(request_body(duration=4))
            s.wait_job(first["id"])
            subprocess.run([POSTGRES_SH, "stop", PG_DIR], check=True,
                           timeout=120)
            try:
                r = s.get_job(first["id"])
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.json["error"]["code"],
                                 "store_unavailable")
                self.assertEqual(r.json["api_details"]["api_status"],
                                 "failure")
                r = s.submit(request_body(duration=4))
                self.assertEqual(r.status, 503, r)
                # Not ready, but alive: no restart would help.
                r = s.request("GET", "/readyz")
                self.assertEqual((r.status, r.json["status"]),
                                 (503, "not_ready"))
                self.assertEqual(s.request("GET", "/healthz").status, 200)
            finally:
                subprocess.run([POSTGRES_SH, "resume", PG_DIR], check=True,
                               timeout=120)
            # Back by itself, without a restart.
            self.assertTrue(wait_for(
                lambda: s.request("GET", "/readyz").status == 200,
                timeout=20))
            self.assertEqual(s.get_job(first["id"]).status, 200)
            job = s.submit_job(request_body(duration=4))
            self.assertEqual(s.wait_job(job["id"])["status"], "succeeded")
            self.assertIn("0 mismatched", s.cli("ledger", "check").stdout)
        finally:
            s.cleanup()


if __name__ == "__main__":
    unittest.main()
