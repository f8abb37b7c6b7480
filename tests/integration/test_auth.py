"""Keys, tokens and the 401/403 rules of the contract."""
import base64
import json
import time
import unittest

from vg import Server, ServerTest, multipart


def b64(obj):
    raw = json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenExchange(ServerTest):
    def assert_token(self, r):
        self.assertEqual(r.status, 200, r)
        body = r.json
        self.assertEqual(body["token_type"], "bearer")
        self.assertGreater(body["expires_in"], 0)
        self.assertEqual(body["access_token"].count("."), 2)
        return body["access_token"]

    def test_key_in_query_string_gives_token(self):
        s = self.server
        r = s.request("POST", "/v1/ula/oauth-authentication?api_key="
                      + s.key)
        self.assert_token(r)

    def test_key_in_json_body_gives_token(self):
        s = self.server
        r = s.request("POST", "/v1/ula/oauth-authentication",
                      {"api_key": s.key})
        self.assert_token(r)

    def test_key_in_form_body_gives_token(self):
        s = self.server
        body, ctype = multipart({"api_key": s.key})
        r = s.request("POST", "/v1/ula/oauth-authentication", body,
                      {"Content-Type": ctype})
        self.assert_token(r)

    def test_key_in_x_api_key_header_gives_token(self):
        s = self.server
        r = s.request("POST", "/v1/ula/oauth-authentication",
                      headers={"X-API-KEY": s.key})
        self.assert_token(r)

    def test_unknown_key_is_403(self):
        r = self.server.request(
            "POST", "/v1/ula/oauth-authentication?api_key=vg_nope")
        self.assertEqual(r.status, 403)
        self.assertEqual(r.json["api_details"]["api_status"], "failure")
        self.assertEqual(r.json["data"], {})

    def test_missing_key_is_403(self):
        r = self.server.request("POST", "/v1/ula/oauth-authentication")
        self.assertEqual(r.status, 403)

    def test_token_authorizes_ula_routes(self):
        s = self.server
        token = s.token()
        r = s.request("GET", "/v1/ula/models",
                      headers={"Authorization": "Bearer " + token})
        self.assertEqual(r.status, 200, r)

    def test_raw_key_as_bearer_is_accepted(self):
        s = self.server
        r = s.request("GET", "/v1/ula/models", headers=s.auth())
        self.assertEqual(r.status, 200)

    def test_raw_key_in_x_api_key_is_accepted(self):
        s = self.server
        r = s.request("GET", "/v1/ula/models", headers={"X-API-KEY": s.key})
        self.assertEqual(r.status, 200)

    def test_missing_credentials_are_401(self):
        r = self.server.request("GET", "/v1/ula/models")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json["api_details"]["api_status"], "failure")
        self.assertEqual(r.header("Content-Type"), "application/json")

    def test_garbage_bearer_is_401(self):
        r = self.server.request("GET", "/v1/ula/models",
                                headers={"Authorization": "Bearer abc"})
        self.assertEqual(r.status, 401)

    def test_wrong_scheme_is_401(self):
        r = self.server.request(
            "GET", "/v1/ula/models",
            headers={"Authorization": "Basic " + self.server.key})
        self.assertEqual(r.status, 401)

    def test_token_with_wrong_signature_is_401(self):
        s = self.server
        head, claims, sig = s.token().split(".")
        forged = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
        r = s.request("GET", "/v1/ula/models", headers={
            "Authorization": "Bearer %s.%s.%s" % (head, claims, forged)})
        self.assertEqual(r.status, 401)

    def test_token_with_changed_claims_is_401(self):
        s = self.server
        head, claims, sig = s.token().split(".")
        padded = claims + "=" * (-len(claims) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded))
        body["exp"] += 100000
        r = s.request("GET", "/v1/ula/models", headers={
            "Authorization": "Bearer %s.%s.%s" % (head, b64(body), sig)})
        self.assertEqual(r.status, 401)

    def test_alg_none_token_is_401(self):
        s = self.server
        _, claims, _ = s.token().split(".")
        head = b64({"alg": "none", "typ": "JWT"})
        for token in ("%s.%s." % (head, claims), "%s.%s" % (head, claims)):
            r = s.request("GET", "/v1/ula/models",
                          headers={"Authorization": "Bearer " + token})
            self.assertEqual(r.status, 401, token)

    def test_every_response_has_a_request_id(self):
        r = self.server.request("GET", "/v1/ula/models")
        self.assertTrue(r.header("X-Request-Id"))
        r = self.server.request("GET", "/healthz",
                                headers={"X-Request-Id": "trace-42"})
        self.assertEqual(r.header("X-Request-Id"), "trace-42")


class Revocation(ServerTest):
    def test_revoked_key_and_its_tokens_stop_at_once(self):
        s = self.server
        key = s.cli("keys", "create", "--name", "temp", "--credits",
                    "5").stdout.strip()
        token = s.token(key)
        ok = s.request("GET", "/v1/ula/models",
                       headers={"Authorization": "Bearer " + token})
        self.assertEqual(ok.status, 200)
        listing = s.cli("keys", "list").stdout
        key_id = [line.split()[0] for line in listing.splitlines()
                  if " temp " in line][0]
        s.cli("keys", "revoke", key_id)
        for cred in (token, key):
            r = s.request("GET", "/v1/ula/models",
                          headers={"Authorization": "Bearer " + cred})
            self.assertEqual(r.status, 401, cred)
        r = s.request("POST", "/v1/ula/oauth-authentication?api_key=" + key)
        self.assertEqual(r.status, 403)
        self.assertIn("revoked", r.json["error"]["message"])


class Expiry(unittest.TestCase):
    def test_expired_token_is_401(self):
        s = Server(config={"token_lifetime_s": 1}).start()
        try:
            token = s.token()
            time.sleep(2.2)
            r = s.request("GET", "/v1/ula/models",
                          headers={"Authorization": "Bearer " + token})
            self.assertEqual(r.status, 401)
            self.assertEqual(r.json["error"]["code"], "token_expired")
        finally:
            s.cleanup()


if __name__ == "__main__":
    unittest.main()
