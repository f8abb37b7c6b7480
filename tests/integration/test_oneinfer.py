"""OneInfer clients unchanged: the seed page's own example and the fields
real OneInfer clients send, against vidgate's built-in catalog and the
fake providers of tests/fakes.

The example request is the seed page's, verbatim. With no provider key
it must answer 503 no_provider before any charge; with a (fake) Novita
or BytePlus key it must route there and answer the vendor's envelope.
"""
import copy
import os
import shutil
import sys
import tempfile
import unittest

from vg import Server, make_mp4, multipart

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "fakes"))
from fake_provider import FakeProvider, scenario_path  # noqa: E402

# ../shared/seed/generate-video-endpoint.txt, "Example Request".
SEED_EXAMPLE = {
    "model": "seedance-v1.5-pro-t2v",
    "prompt": "a cat drinking milk in a cozy kitchen",
    "resolution": "720P",
    "aspect_ratio": "16:9",
    "duration": 5,
    "generate_audio": True,
    "camera_fixed": False,
    "service_tier": "default",
    "fps": 24,
    "seed": -1,
}

KEY_ENV = "VG_TEST_ONEINFER_KEY"
BUILTIN_KEY_ENVS = ("NOVITA_API_KEY", "GEMINI_API_KEY", "ARK_API_KEY",
                    "FAL_KEY", "REPLICATE_API_TOKEN",
                    "GOOGLE_APPLICATION_CREDENTIALS")


def no_keys():
    """An environment where no built-in provider has a key."""
    return {k: "" for k in BUILTIN_KEY_ENVS}


def upstream(fake, base_path=""):
    """A built-in provider's section pointed at a fake, polled fast."""
    return {"base_url": fake.url + base_path, "api_key_env": KEY_ENV,
            "poll_interval_ms": 100, "poll_max_interval_ms": 200,
            "allow_private_addresses": True}


class Common:
    def envelope_error(self, r, status, code):
        self.assertEqual(r.status, status, r)
        doc = r.json
        self.assertEqual(doc["api_details"]["api_status"], "failure", doc)
        self.assertEqual(doc["data"], {}, doc)
        self.assertEqual(doc["error"]["code"], code, doc)
        return doc["error"]


class NoProviderKeys(Common, unittest.TestCase):
    """A default install: built-in catalog, no keys."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(env=no_keys()).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def test_seed_example_is_503_no_provider_before_any_charge(self):
        s = self.server
        before = s.credits()
        r = s.generate(copy.deepcopy(SEED_EXAMPLE))
        err = self.envelope_error(r, 503, "no_provider")
        self.assertIn("seedance-v1.5-pro-t2v", err["message"])
        self.assertEqual(s.credits(), before)

    def test_oneinfer_names_are_listed_with_their_modality(self):
        r = self.server.request("GET", "/v1/ula/models",
                                headers=self.server.auth())
        self.assertEqual(r.status, 200, r)
        models = {m["name"]: m for m in r.json["data"]["models"]}
        for name, target, modality in (
                ("seedance-v1.5-pro-t2v", "seedance-v1.5-pro", "t2v"),
                ("seedance-v1.5-pro-i2v", "seedance-v1.5-pro", "i2v"),
                ("seedance-v1-pro-t2v", "seedance-v1-pro", "t2v"),
                ("wan2.1-t2v-turbo", "wan-2.1", "t2v")):
            self.assertEqual(models[name]["alias_of"], target)
            self.assertEqual(models[name]["modalities"], [modality])
            self.assertIs(models[name]["available"], False)
        legacy = self.server.request("GET", "/v1/developer/get-all-models")
        names = [m["model_name"] for m in legacy.json["data"]["models"]]
        self.assertIn("seedance-v1.5-pro-i2v", names)

    def test_unknown_model_lists_available_apart_from_unserved(self):
        body = dict(SEED_EXAMPLE, model="seedance-v9-ultra")
        err = self.envelope_error(self.server.generate(body), 400,
                                  "unsupported_model")
        msg = err["message"]
        self.assertIn('unknown model "seedance-v9-ultra"', msg)
        now = msg.index("available now: ")
        idle = msg.index("without a configured provider: ")
        self.assertIn("vidgate-local", msg[now:idle])
        self.assertNotIn("seedance", msg[now:idle])
        self.assertIn("seedance-v1.5-pro", msg[idle:])

    def test_model_pricing_in_credits_per_second(self):
        r = self.server.request("GET", "/v1/developer/get-model-pricing")
        self.assertEqual(r.status, 200, r)
        doc = r.json
        self.assertEqual(doc["api_details"]["api_status"], "success")
        self.assertEqual(doc["error"], {})
        prices = {m["model_name"]: m for m in doc["data"]["models"]}
        listed = self.server.request("GET", "/v1/ula/models",
                                     headers=self.server.auth())
        catalog = {m["name"]: m for m in listed.json["data"]["models"]}
        # Every name the models endpoint lists, at its price.
        self.assertEqual(set(prices), set(catalog))
        for name, entry in prices.items():
            self.assertEqual(entry["currency"], "credits")
            self.assertEqual(entry["provider"], catalog[name]["provider"])
            self.assertEqual(entry["price_per_second"],
                             catalog[name]["price"]["per_second"])
            self.assertEqual(entry["available"], catalog[name]["available"])
        example = prices["seedance-v1.5-pro-t2v"]
        self.assertEqual(example["price_per_second"],
                         {"480P": 1.2, "720P": 2.6})
        self.assertEqual(prices["vidgate-local"]["price_per_second"],
                         {"480P": 1, "720P": 2, "1080P": 4})
        self.assertIs(prices["vidgate-local"]["available"], True)

    def test_i2v_name_without_an_image_is_400(self):
        body = dict(SEED_EXAMPLE, model="seedance-v1.5-pro-i2v")
        err = self.envelope_error(self.server.generate(body), 400,
                                  "unsupported_parameter")
        self.assertEqual(err["field"], "files")


class WithOneProvider(Common):
    """The seed example with one provider's key, on its fake."""
    provider = None
    base_path = ""
    scenario = None

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="vg-oneinfer-")
        cls.media = make_mp4(os.path.join(cls.dir, "v.mp4"),
                             size="1280x720", audio=True)
        cls.fake = FakeProvider(video=cls.media).start()
        env = no_keys()
        env[KEY_ENV] = "test-key"
        config = {"providers": {cls.provider: upstream(cls.fake,
                                                       cls.base_path)}}
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

    def setUp(self):
        self.fake.reset()

    def test_seed_example_verbatim_is_200_in_the_vendor_shape(self):
        s = self.server
        self.fake.load(scenario_path(self.scenario))
        before = s.credits()
        # The seed page's flow: exchange the key for a token, then call.
        token = s.token()
        r = s.generate(copy.deepcopy(SEED_EXAMPLE), key=token)
        self.assertEqual(r.status, 200, r)
        doc = r.json
        self.assertEqual(doc["api_details"]["api_status"], "success")
        self.assertEqual(doc["error"], {})
        data = doc["data"]
        self.assertEqual(data["provider"], self.provider)
        self.assertEqual(data["model"], "seedance-v1.5-pro-t2v")
        self.assertEqual(data["finish_reason"], "stop")
        # The size of the video the provider made (the fake's 1280x720).
        self.assertEqual(data["resolution"], "1280*720")
        self.assertEqual(data["videos"][0]["type"], "mp4")
        self.assertEqual(data["images"], [])
        self.assertIsNone(data["audios"])
        self.fake.assert_clean(timeout=10)
        submit = [e for e in self.fake.report()["log"]
                  if e["method"] == "POST" and "json" in e]
        self.assertEqual(len(submit), 1)
        self.check_submit(submit[0])
        # Charged once, at the catalog's price (720P, 5 s, with audio).
        self.assertAlmostEqual(s.credits(), before - 2.6 * 5 * 2, places=3)

    def check_submit(self, entry):
        raise NotImplementedError


class SeedExampleOnNovita(WithOneProvider, unittest.TestCase):
    provider = "novita"
    scenario = "novita/success"

    def check_submit(self, entry):
        self.assertEqual(entry["path"], "/v3/async/seedance-v1.5-pro-t2v")
        body = entry["json"]
        self.assertEqual(body["prompt"], SEED_EXAMPLE["prompt"])
        self.assertEqual(body["ratio"], "16:9")
        self.assertEqual(body["resolution"], "720p")
        self.assertEqual(body["duration"], 5)
        self.assertIs(body["generate_audio"], True)


class SeedExampleOnBytePlus(WithOneProvider, unittest.TestCase):
    provider = "byteplus"
    base_path = "/api/v3"
    scenario = "byteplus/success"

    def check_submit(self, entry):
        body = entry["json"]
        self.assertEqual(body["model"], "seedance-1-5-pro-251215")
        self.assertEqual(body["content"][0]["text"], SEED_EXAMPLE["prompt"])
        self.assertEqual(body["ratio"], "16:9")
        self.assertEqual(body["resolution"], "720p")
        self.assertIs(body["generate_audio"], True)


class FieldsRealClientsSend(Common, unittest.TestCase):
    """Novita and BytePlus both have keys (BytePlus is Seedance's first
    route): "provider", "number" and the token exchange as OneInfer
    clients use them."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="vg-oneinfer-")
        media = make_mp4(os.path.join(cls.dir, "v.mp4"), size="1280x720",
                         audio=True)
        cls.novita = FakeProvider(video=media).start()
        cls.byteplus = FakeProvider(video=media).start()
        env = no_keys()
        env[KEY_ENV] = "test-key"
        config = {"providers": {
            "novita": upstream(cls.novita),
            "byteplus": upstream(cls.byteplus, "/api/v3")}}
        try:
            cls.server = Server(config=config, env=env).start()
        except Exception:
            cls.novita.stop()
            cls.byteplus.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.cleanup()
        finally:
            cls.novita.stop()
            cls.byteplus.stop()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.novita.reset()
        self.byteplus.reset()

    def submits(self, fake):
        return [e for e in fake.report()["log"]
                if e["method"] == "POST" and "json" in e]

    def test_preferred_provider_takes_the_job(self):
        self.novita.load(scenario_path("novita/success"))
        body = dict(SEED_EXAMPLE, provider="novita", number=1)
        r = self.server.generate(body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["provider"], "novita")
        self.novita.assert_clean(timeout=10)
        self.assertEqual(len(self.submits(self.novita)), 1)
        self.assertEqual(self.byteplus.report()["log"], [])

    def test_without_a_preference_the_models_order_holds(self):
        self.byteplus.load(scenario_path("byteplus/success"))
        r = self.server.generate(copy.deepcopy(SEED_EXAMPLE))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["provider"], "byteplus")
        self.byteplus.assert_clean(timeout=10)
        self.assertEqual(self.novita.report()["log"], [])

    def test_preference_in_a_multipart_form(self):
        self.novita.load(scenario_path("novita/success"))
        fields = {k: str(v).lower() if isinstance(v, bool) else str(v)
                  for k, v in SEED_EXAMPLE.items()}
        fields.update(provider="novita", number="1")
        data, ctype = multipart(fields)
        h = self.server.auth()
        h["Content-Type"] = ctype
        r = self.server.request("POST", "/v1/ula/generate-video", data, h)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["provider"], "novita")
        self.novita.assert_clean(timeout=10)

    def test_provider_not_serving_the_model_is_400_before_charging(self):
        before = self.server.credits()
        r = self.server.generate(dict(SEED_EXAMPLE, provider="google"))
        err = self.envelope_error(r, 400, "unsupported_provider")
        self.assertEqual(err["field"], "provider")
        self.assertIn("byteplus", err["message"])
        self.assertEqual(self.server.credits(), before)
        self.assertEqual(self.novita.report()["log"], [])
        self.assertEqual(self.byteplus.report()["log"], [])

    def test_number_other_than_one_is_422(self):
        before = self.server.credits()
        for number in (2, 0, "1"):
            r = self.server.generate(dict(SEED_EXAMPLE, number=number))
            err = self.envelope_error(r, 422, "validation_error")
            self.assertEqual(err["field"], "number")
        self.assertEqual(self.server.credits(), before)

    def test_token_exchange_takes_the_raw_key_as_bearer(self):
        s = self.server
        r = s.request("POST", "/v1/ula/oauth-authentication",
                      headers={"Authorization": "Bearer " + s.key})
        self.assertEqual(r.status, 200, r)
        token = r.json["access_token"]
        self.assertEqual(r.json["token_type"], "bearer")
        self.assertEqual(s.request("GET", "/v1/ula/models",
                                   headers=s.auth(token)).status, 200)
        r = s.request("POST", "/v1/ula/oauth-authentication",
                      headers={"Authorization": "Bearer vg_not_a_key"})
        self.envelope_error(r, 403, r.json["error"]["code"])


if __name__ == "__main__":
    unittest.main()
