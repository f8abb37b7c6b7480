"""Veo on Vertex AI (the google-vertex provider) against a fake: the
service-account key is turned into an RS256 JWT, exchanged at the key's
token_uri for an access token, and that token is the bearer of every
Vertex and Cloud Storage call; predictLongRunning carries generateAudio,
seed and storageUri, the operation is polled with fetchPredictOperation,
and the gs:// result is read through the Cloud Storage JSON API.

The fake serves the scripted exchanges and checks the bearer; the test
then checks, with the openssl command line, that the JWT the token
endpoint got was signed by the configured key and says what Google asks
for (iss, scope, aud).
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

from vg import Server, make_mp4

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "fakes"))
from fake_provider import FakeProvider  # noqa: E402

KEY_ENV = "VG_TEST_VERTEX_KEY"
TOKEN = "ya29.fake-vertex-access-token"
PROJECT, REGION = "vg-test-project", "us-central1"
BASE = "/v1/projects/%s/locations/%s" % (PROJECT, REGION)
MODEL = "veo-3.0-generate-001"
OPERATION = ("projects/%s/locations/%s/publishers/google/models/%s/"
             "operations/op-7f3a" % (PROJECT, REGION, MODEL))
GCS = "gs://vg-videos/out/op-7f3a/sample_0.mp4"
PROMPT = "a red fox running through snow"
BEARER = {"Authorization": "Bearer " + TOKEN}
BUILTIN_KEY_ENVS = ("NOVITA_API_KEY", "GEMINI_API_KEY", "ARK_API_KEY",
                    "FAL_KEY", "REPLICATE_API_TOKEN",
                    "GOOGLE_APPLICATION_CREDENTIALS")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def scenario():
    model_path = BASE + "/publishers/google/models/" + MODEL
    poll = {"method": "POST", "path": model_path + ":fetchPredictOperation",
            "headers": BEARER, "json": {"operationName": OPERATION}}
    return {"name": "vertex/success", "exchanges": [
        {"name": "token", "request": {
            "method": "POST", "path": "/token",
            "headers": {"Content-Type":
                        "application/x-www-form-urlencoded",
                        "Authorization": None}},
         "response": {"status": 200, "json": {
             "access_token": TOKEN, "expires_in": 3599,
             "token_type": "Bearer"}}},
        {"name": "predictLongRunning", "request": {
            "method": "POST", "path": model_path + ":predictLongRunning",
            "headers": BEARER,
            "json": {"instances": [{"prompt": PROMPT}],
                     "parameters": {"sampleCount": 1, "durationSeconds": 8,
                                    "aspectRatio": "16:9",
                                    "resolution": "720p",
                                    "generateAudio": True, "seed": 42,
                                    "storageUri": "gs://vg-videos/out"}}},
         "response": {"status": 200, "json": {"name": OPERATION}}},
        {"name": "poll: running", "request": poll,
         "response": {"status": 200, "json": {"name": OPERATION}}},
        {"name": "poll: done", "request": poll,
         "response": {"status": 200, "json": {
             "name": OPERATION, "done": True, "response": {
                 "@type": "type.googleapis.com/cloud.ai.large_models.vision."
                          "GenerateVideoResponse",
                 "raiMediaFilteredCount": 0,
                 "videos": [{"gcsUri": GCS, "mimeType": "video/mp4"}]}}}},
        {"name": "read the object", "request": {
            "method": "GET",
            "path": "/storage/v1/b/vg-videos/o/out/op-7f3a/sample_0.mp4",
            "query": {"alt": "media"}, "headers": BEARER},
         "response": {"status": 200, "file": "$VIDEO"}},
    ]}


class Vertex(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="vg-vertex-")
        cls.video = make_mp4(os.path.join(cls.dir, "v.mp4"),
                             size="1280x720", audio=True)
        cls.pem = os.path.join(cls.dir, "key.pem")
        cls.pub = os.path.join(cls.dir, "pub.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                        "-pkeyopt", "rsa_keygen_bits:2048", "-out", cls.pem],
                       check=True, capture_output=True, timeout=60)
        subprocess.run(["openssl", "pkey", "-in", cls.pem, "-pubout",
                        "-out", cls.pub], check=True, capture_output=True,
                       timeout=60)
        cls.fake = FakeProvider(video=cls.video).start()
        with open(cls.pem) as f:
            private_key = f.read()
        cls.key_file = os.path.join(cls.dir, "sa.json")
        with open(cls.key_file, "w") as f:
            json.dump({"type": "service_account", "project_id": PROJECT,
                       "private_key_id": "kid-1234",
                       "private_key": private_key,
                       "client_email": "vidgate@%s.iam.gserviceaccount.com"
                                       % PROJECT,
                       "token_uri": cls.fake.url + "/token"}, f)
        env = {k: "" for k in BUILTIN_KEY_ENVS}
        env[KEY_ENV] = cls.key_file
        config = {"providers": {"google-vertex": {
            "api_key_env": KEY_ENV, "base_url": cls.fake.url + BASE,
            "storage_uri": "gs://vg-videos/out",
            "storage_url": cls.fake.url,
            "poll_interval_ms": 100, "poll_max_interval_ms": 200,
            "allow_private_addresses": True}}}
        try:
            cls.server = Server(config=config, env=env).start()
        except Exception:
            cls.fake.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.cleanup()
        finally:
            cls.fake.stop()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def test_veo_on_vertex_with_a_service_account_token(self):
        s = self.server
        self.fake.reset()
        self.fake.load(scenario())
        models = {m["name"]: m for m in s.request(
            "GET", "/v1/ula/models", headers=s.auth()).json["data"]["models"]}
        self.assertIs(models[MODEL]["available"], True)
        self.assertEqual(models[MODEL]["provider"], "google-vertex")
        key = s.new_key("vertex", 1000)
        before = s.credits(key)
        r = s.generate({"model": MODEL, "prompt": PROMPT,
                        "resolution": "720P", "aspect_ratio": "16:9",
                        "duration": 8, "generate_audio": True,
                        "camera_fixed": False, "service_tier": "default",
                        "seed": 42}, key)
        self.assertEqual(r.status, 200, r)
        data = r.json["data"]
        self.assertEqual(data["provider"], "google-vertex")
        self.fake.assert_clean(timeout=10)
        got = s.fetch_url(data["videos"][0]["url"])
        with open(self.video, "rb") as f:
            self.assertEqual(got.body, f.read())
        self.assertAlmostEqual(s.credits(key), before - 40 * 8, places=3)
        # Exactly one token for all the calls (it is cached).
        log = self.fake.report()["log"]
        self.assertEqual([e["path"] for e in log].count("/token"), 1)
        self.check_assertion(log[0]["body"])

    def check_assertion(self, body):
        form = urllib.parse.parse_qs(body)
        self.assertEqual(form["grant_type"],
                         ["urn:ietf:params:oauth:grant-type:jwt-bearer"])
        jwt = form["assertion"][0]
        header_b64, claims_b64, sig_b64 = jwt.split(".")
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(claims_b64))
        self.assertEqual(header["alg"], "RS256")
        self.assertEqual(header["kid"], "kid-1234")
        self.assertEqual(claims["iss"],
                         "vidgate@%s.iam.gserviceaccount.com" % PROJECT)
        self.assertEqual(claims["aud"], self.fake.url + "/token")
        self.assertEqual(claims["scope"],
                         "https://www.googleapis.com/auth/cloud-platform")
        self.assertEqual(claims["exp"] - claims["iat"], 3600)
        # Signed by the configured key: openssl verifies it with the
        # public half, and refuses it with any other key.
        signed = os.path.join(self.dir, "signed")
        sig = os.path.join(self.dir, "sig")
        with open(signed, "wb") as f:
            f.write((header_b64 + "." + claims_b64).encode())
        with open(sig, "wb") as f:
            f.write(b64url_decode(sig_b64))
        ok = subprocess.run(["openssl", "dgst", "-sha256", "-verify",
                             self.pub, "-signature", sig, signed],
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        other = os.path.join(self.dir, "other.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                        "-pkeyopt", "rsa_keygen_bits:2048", "-out", other],
                       check=True, capture_output=True, timeout=60)
        other_pub = os.path.join(self.dir, "other_pub.pem")
        subprocess.run(["openssl", "pkey", "-in", other, "-pubout",
                        "-out", other_pub], check=True, capture_output=True,
                       timeout=60)
        bad = subprocess.run(["openssl", "dgst", "-sha256", "-verify",
                              other_pub, "-signature", sig, signed],
                             capture_output=True, text=True, timeout=60)
        self.assertNotEqual(bad.returncode, 0)


class VertexBadKey(unittest.TestCase):
    def test_an_unusable_key_leaves_the_provider_off(self):
        d = tempfile.mkdtemp(prefix="vg-vertex-")
        try:
            key = os.path.join(d, "sa.json")
            with open(key, "w") as f:
                json.dump({"type": "service_account"}, f)
            env = {k: "" for k in BUILTIN_KEY_ENVS}
            env["GOOGLE_APPLICATION_CREDENTIALS"] = key
            s = Server(env=env).start()
            try:
                p = s.health().json["providers"]["google-vertex"]
                self.assertIs(p["configured"], False)
                self.assertIn("client_email", s.log())
            finally:
                s.cleanup()
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
