"""Webhooks: a job with webhook_url is POSTed to it when it ends, signed per
Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature
v1,base64(HMAC-SHA256)), retried with exponential backoff on non-2xx with
the same webhook-id; the account's secret can be read and rotated;
private/loopback targets are refused unless the operator allows them;
pending deliveries survive a crash."""
import base64
import json
import time
import unittest

from vg import (BROKEN_PNG_URL, JOB_FIELDS, ReplayServerTest, Server,
                WebhookReceiver, jobs_config, make_mp4, replay_body,
                request_body, result_without_link_query, webhook_signed_by)

WEBHOOKS = {"allow_private_addresses": True, "retry_base_ms": 200,
            "timeout_s": 2}
ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
LONG_LOCAL = dict(resolution="1080P", aspect_ratio="16:9", duration=12,
                  generate_audio=True)


class DeliveryChecks:
    def assertDelivery(self, delivery, secret, kind, job_id):
        h = delivery["headers"]
        self.assertRegex(h.get("webhook-id", ""), r"^msg_\S+$", h)
        self.assertRegex(h.get("webhook-timestamp", ""), r"^\d+$", h)
        self.assertLessEqual(abs(int(h["webhook-timestamp"]) - time.time()),
                             30, h)
        self.assertTrue(webhook_signed_by(secret, delivery),
                        "bad signature: %r" % h)
        self.assertTrue(h.get("content-type", "").startswith(
            "application/json"), h)
        doc = json.loads(delivery["body"])
        self.assertEqual(set(doc), {"type", "timestamp", "data"}, doc)
        self.assertEqual(doc["type"], kind)
        self.assertRegex(doc["timestamp"], ISO)
        self.assertEqual(set(doc["data"]), JOB_FIELDS)
        self.assertEqual(doc["data"]["id"], job_id)
        self.assertEqual(doc["data"]["status"], kind.split(".", 1)[1])
        return doc

    def assertSameAsStored(self, job, stored):
        for k in sorted(JOB_FIELDS - {"eta", "data"}):
            self.assertEqual(job[k], stored[k], k)
        if stored["data"] is None:
            self.assertIsNone(job["data"])
        else:
            self.assertEqual(result_without_link_query(job["data"]),
                             result_without_link_query(stored["data"]))


class Webhooks(DeliveryChecks, ReplayServerTest):
    replay_delay_ms = 300
    webhook_settings = WEBHOOKS

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.receiver = WebhookReceiver(default=204)
        cls.receiver.path_plans["/retried"] = [500, 500]

    @classmethod
    def tearDownClass(cls):
        cls.receiver.close()
        super().tearDownClass()

    def test_failures_are_retried_with_the_same_id_and_signed(self):
        s = self.server
        r = self.receiver
        acct = s.new_key("hooks", 100)
        secret = s.webhook_secret(acct)
        url = r.url("/retried")
        job = s.submit_job(replay_body(webhook_url=url), acct)
        self.assertEqual(job["webhook_url"], url)
        self.assertEqual(s.job(job["id"], acct)["webhook_url"], url)
        done = s.wait_job(job["id"], key=acct)
        self.assertEqual(done["status"], "succeeded")
        got = r.wait(lambda ds: len([d for d in ds
                                     if d["path"] == "/retried"]) >= 3, 20)
        self.assertIsNotNone(got, r.for_path("/retried"))
        deliveries = r.for_path("/retried")
        self.assertEqual([d["status"] for d in deliveries], [500, 500, 204])
        ids = {d["headers"]["webhook-id"] for d in deliveries}
        self.assertEqual(len(ids), 1, ids)
        for d in deliveries:
            doc = self.assertDelivery(d, secret, "job.succeeded", job["id"])
            self.assertSameAsStored(doc["data"], s.job(job["id"], acct))
        # Exponential backoff.
        t = [d["time"] for d in deliveries]
        self.assertGreaterEqual(t[1] - t[0], 0.15, t)
        self.assertGreater(t[2] - t[1], 1.4 * (t[1] - t[0]), t)
        # Delivered: no more attempts.
        time.sleep(1.5)
        self.assertEqual(len(r.for_path("/retried")), 3)

    def test_failed_job_is_announced(self):
        s = self.server
        acct = s.new_key("hooksfail", 100)
        secret = s.webhook_secret(acct)
        url = self.receiver.url("/failed")
        job = s.submit_job(request_body(files=[BROKEN_PNG_URL],
                                        webhook_url=url), acct)
        s.wait_job(job["id"], key=acct)
        self.assertIsNotNone(self.receiver.wait(
            lambda ds: any(d["path"] == "/failed" and d["status"] < 300
                           for d in ds), 20))
        last = self.receiver.for_path("/failed")[-1]
        doc = self.assertDelivery(last, secret, "job.failed", job["id"])
        self.assertEqual(doc["data"]["error"]["code"], "invalid_image")
        self.assertSameAsStored(doc["data"], s.job(job["id"], acct))

    def test_cancelled_job_is_announced(self):
        s = self.server
        acct = s.new_key("hookscancel", 200)
        secret = s.webhook_secret(acct)
        url = self.receiver.url("/cancelled")
        job = s.submit_job(request_body(webhook_url=url, **LONG_LOCAL), acct)
        self.assertEqual(s.cancel_job(job["id"], acct).status, 200)
        self.assertIsNotNone(self.receiver.wait(
            lambda ds: any(d["path"] == "/cancelled" and d["status"] < 300
                           for d in ds), 20))
        deliveries = self.receiver.for_path("/cancelled")
        doc = self.assertDelivery(deliveries[-1], secret, "job.cancelled",
                                  job["id"])
        self.assertEqual(doc["data"]["error"]["code"], "cancelled")
        self.assertSameAsStored(doc["data"], s.job(job["id"], acct))
        time.sleep(1)
        kinds = {json.loads(d["body"])["type"]
                 for d in self.receiver.for_path("/cancelled")}
        self.assertEqual(kinds, {"job.cancelled"})

    def test_no_webhook_url_no_delivery(self):
        s = self.server
        acct = s.new_key("hooksnone", 100)
        before = len(self.receiver.deliveries)
        job = s.submit_job(replay_body(), acct)
        self.assertIsNone(job["webhook_url"])
        s.wait_job(job["id"], key=acct)
        time.sleep(0.5)
        new = self.receiver.deliveries[before:]
        self.assertFalse([d for d in new
                          if job["id"].encode() in d["body"]], new)

    def test_secret_is_stable_per_account_and_rotates(self):
        s = self.server
        acct = s.new_key("hooksecret", 100)
        other = s.new_key("hooksecret2", 100)
        r = s.request("GET", "/v1/ula/webhooks/secret", headers=s.auth(acct))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["api_details"]["api_status"], "success")
        self.assertEqual(set(r.json["data"]), {"secret", "scheme"})
        first = r.json["data"]["secret"]
        self.assertTrue(first.startswith("whsec_"), first)
        self.assertGreaterEqual(len(base64.b64decode(first[6:])), 24)
        self.assertEqual(s.webhook_secret(acct), first)
        self.assertNotEqual(s.webhook_secret(other), first)
        rotated = s.request("POST", "/v1/ula/webhooks/secret/rotate",
                            headers=s.auth(acct))
        self.assertEqual(rotated.status, 200, rotated)
        second = rotated.json["data"]["secret"]
        self.assertTrue(second.startswith("whsec_"), second)
        self.assertNotEqual(second, first)
        self.assertEqual(s.webhook_secret(acct), second)
        # Deliveries from now on are signed with the new secret only.
        url = self.receiver.url("/rotated")
        job = s.submit_job(replay_body(webhook_url=url), acct)
        s.wait_job(job["id"], key=acct)
        self.assertIsNotNone(self.receiver.wait(
            lambda ds: any(d["path"] == "/rotated" and d["status"] < 300
                           for d in ds), 20))
        for d in self.receiver.for_path("/rotated"):
            self.assertDelivery(d, second, "job.succeeded", job["id"])
            self.assertFalse(webhook_signed_by(first, d))

    def test_retries_after_a_rotation_use_the_new_secret(self):
        s = self.server
        r = self.receiver
        acct = s.new_key("hookrot2", 100)
        old = s.webhook_secret(acct)
        r.path_plans["/rotating"] = [500, 500]
        job = s.submit_job(replay_body(webhook_url=r.url("/rotating")), acct)
        self.assertIsNotNone(r.wait(lambda ds: any(
            d["path"] == "/rotating" for d in ds), 20))
        rotated = s.request("POST", "/v1/ula/webhooks/secret/rotate",
                            headers=s.auth(acct))
        self.assertEqual(rotated.status, 200, rotated)
        new = rotated.json["data"]["secret"]
        self.assertIsNotNone(r.wait(lambda ds: any(
            d["path"] == "/rotating" and d["status"] == 204 for d in ds), 20))
        deliveries = r.for_path("/rotating")
        self.assertEqual(len(deliveries), 3, deliveries)
        self.assertEqual(len({d["headers"]["webhook-id"]
                              for d in deliveries}), 1)
        self.assertDelivery(deliveries[0], old, "job.succeeded", job["id"])
        self.assertDelivery(deliveries[-1], new, "job.succeeded", job["id"])

    def test_redirects_are_failures_and_not_followed(self):
        s = self.server
        r = self.receiver
        acct = s.new_key("hookredirect", 100)
        secret = s.webhook_secret(acct)
        r.path_plans["/redirect"] = [302, 307]
        job = s.submit_job(replay_body(webhook_url=r.url("/redirect")), acct)
        self.assertIsNotNone(r.wait(lambda ds: any(
            d["path"] == "/redirect" and d["status"] == 204 for d in ds), 20))
        deliveries = r.for_path("/redirect")
        self.assertEqual([d["status"] for d in deliveries], [302, 307, 204])
        self.assertEqual(r.for_path("/elsewhere"), [])
        for d in deliveries:
            self.assertDelivery(d, secret, "job.succeeded", job["id"])

    def test_a_receiver_slower_than_timeout_s_is_retried(self):
        s = self.server
        r = self.receiver
        acct = s.new_key("hookslow", 100)
        secret = s.webhook_secret(acct)
        r.path_delays["/slow"] = [3.5]
        job = s.submit_job(replay_body(webhook_url=r.url("/slow")), acct)
        self.assertIsNotNone(r.wait(lambda ds: len(
            [d for d in ds if d["path"] == "/slow"]) >= 2, 20))
        deliveries = r.for_path("/slow")
        self.assertGreaterEqual(deliveries[1]["time"] - deliveries[0]["time"],
                                1.9)
        self.assertLess(deliveries[1]["time"] - deliveries[0]["time"], 3.4,
                        "the retry waited for the stalled answer")
        self.assertEqual(len({d["headers"]["webhook-id"]
                              for d in deliveries}), 1)
        for d in deliveries:
            self.assertDelivery(d, secret, "job.succeeded", job["id"])
        time.sleep(2)
        self.assertEqual(len(r.for_path("/slow")), 2)

    def test_an_unreachable_receiver_is_retried_until_it_answers(self):
        from vg import free_port
        s = self.server
        acct = s.new_key("hookdown", 100)
        secret = s.webhook_secret(acct)
        port = free_port()
        url = "http://127.0.0.1:%d/late" % port
        job = s.submit_job(replay_body(webhook_url=url), acct)
        s.wait_job(job["id"], key=acct)
        time.sleep(1)   # a few refused connections
        late = WebhookReceiver(default=204, port=port)
        self.addCleanup(late.close)
        self.assertIsNotNone(late.wait(lambda ds: len(ds) >= 1, 20),
                             "never delivered once the receiver was up")
        time.sleep(1)
        self.assertEqual(len(late.deliveries), 1)
        self.assertDelivery(late.deliveries[0], secret, "job.succeeded",
                            job["id"])

    def test_secret_routes_need_auth(self):
        s = self.server
        self.assertEqual(s.request("GET", "/v1/ula/webhooks/secret").status,
                         401)
        self.assertEqual(s.request("POST",
                                   "/v1/ula/webhooks/secret/rotate").status,
                         401)

    def test_bad_schemes_are_422_even_when_private_targets_are_allowed(self):
        s = self.server
        acct = s.new_key("hooksscheme", 100)
        for url in ("ftp://127.0.0.1/hook", "file:///etc/passwd",
                    "not a url", "http://", ""):
            with self.subTest(url=url):
                r = s.submit(replay_body(webhook_url=url), acct)
                self.assertEqual(r.status, 422, r)
                self.assertEqual(r.json["error"].get("field"), "webhook_url")
        self.assertAlmostEqual(s.credits(acct), 100, places=3)
        self.assertEqual(s.list_jobs(acct).json["data"]["jobs"], [])


class PrivateTargets(ReplayServerTest):
    """A server with the default webhook policy: no private targets."""

    def test_private_and_loopback_targets_are_refused(self):
        s = self.server
        acct = s.new_key("ssrf", 100)
        for url in ("http://127.0.0.1:%d/hook" % s.port,
                    "http://localhost/",
                    "http://10.0.0.1/",
                    "http://169.254.169.254/latest/meta-data/",
                    "http://192.168.1.1/",
                    "http://172.16.0.1/",
                    "http://100.64.0.1/",
                    "http://[::1]/",
                    "http://0.0.0.0/",
                    # Other spellings of loopback and private addresses.
                    "http://127.1/",
                    "http://2130706433/",
                    "http://0x7f000001/",
                    "http://[::ffff:127.0.0.1]/",
                    "http://[fd00::1]/",
                    "http://[fe80::1]/",
                    "http://user@127.0.0.1/",
                    "http://LOCALHOST./",
                    "ftp://example.com/hook"):
            with self.subTest(url=url):
                r = s.submit(replay_body(webhook_url=url), acct)
                self.assertEqual(r.status, 422, r)
                self.assertEqual(r.json["error"].get("field"), "webhook_url",
                                 r.json)
                self.assertEqual(r.json["api_details"]["api_status"],
                                 "failure")
        self.assertAlmostEqual(s.credits(acct), 100, places=3)
        self.assertEqual(s.list_jobs(acct).json["data"]["jobs"], [])


class DeliveryAcrossACrash(DeliveryChecks, unittest.TestCase):
    def test_pending_delivery_survives_kill_9(self):
        import os
        import shutil
        import tempfile
        media = tempfile.mkdtemp(prefix="vgmedia-")
        self.addCleanup(shutil.rmtree, media, True)
        mp4 = make_mp4(os.path.join(media, "replay.mp4"))
        receiver = WebhookReceiver(default=500)
        self.addCleanup(receiver.close)
        s = Server(config=jobs_config(mp4, webhooks=WEBHOOKS)).start()
        self.addCleanup(s.cleanup)
        acct = s.new_key("crashhook", 100)
        secret = s.webhook_secret(acct)
        job = s.submit_job(replay_body(webhook_url=receiver.url("/crash")),
                           acct)
        s.wait_job(job["id"], key=acct)
        self.assertIsNotNone(receiver.wait(lambda ds: len(ds) >= 2, 20))
        time.sleep(0.1)
        s.kill()
        failed_before = len(receiver.deliveries)
        receiver.default = 204
        s.restart()
        self.assertIsNotNone(receiver.wait(
            lambda ds: any(d["status"] == 204 for d in ds), 40),
            "the pending delivery was not made after the restart")
        time.sleep(1.5)
        deliveries = receiver.deliveries
        self.assertEqual([d["status"] for d in deliveries],
                         [500] * failed_before + [204], deliveries)
        self.assertEqual(len({d["headers"]["webhook-id"]
                              for d in deliveries}), 1)
        for d in deliveries:
            doc = self.assertDelivery(d, secret, "job.succeeded", job["id"])
            self.assertSameAsStored(doc["data"], s.job(job["id"], acct))
        self.assertAlmostEqual(s.credits(acct), 96, places=3)
        self.assertEqual(s.cli("ledger", "check").returncode, 0)


if __name__ == "__main__":
    unittest.main()
