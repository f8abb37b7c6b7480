"""Every rule of the contract's field table, over JSON and multipart:
422 names the field; 400 says what the model allows."""
import unittest

from catalog import CONFIG
from vg import DELETE, ServerTest, check_video, multipart, request_body

REQUIRED = ["prompt", "model", "resolution", "aspect_ratio", "duration",
            "generate_audio", "camera_fixed", "service_tier"]

WRONG_TYPES = {
    "prompt": [5, True, ["x"]],
    "model": [1, {"a": 1}],
    "resolution": [720, True],
    "aspect_ratio": [1.77, False],
    "duration": ["5", 5.0, 5.5, True],
    "generate_audio": ["true", 1, 0],
    "camera_fixed": ["false", 0],
    "service_tier": [1, True],
    "fps": ["24", 24.0, True],
    "seed": ["1", 1.5, False],
}

OUT_OF_RANGE = {
    "duration": [3, 13, 0, -5],
    "fps": [0, 61, -1],
    "seed": [-2, 4294967296],
}

BAD_ENUMS = {
    "resolution": ["360P", "720", "4K", ""],
    "aspect_ratio": ["2:1", "16/9", "wide", ""],
    "service_tier": ["premium", "Default ", ""],
}


class JsonSchema(ServerTest):
    config = CONFIG

    def assert_422(self, body, field):
        r = self.server.generate(body)
        self.assertEqual(r.status, 422, (field, body, r))
        doc = r.json
        self.assertEqual(doc["api_details"]["api_status"], "failure")
        self.assertEqual(doc["data"], {})
        self.assertEqual(doc["error"]["field"], field, r)
        self.assertTrue(doc["error"]["message"])
        return doc

    def test_each_missing_required_field_is_422(self):
        for field in REQUIRED:
            with self.subTest(field=field):
                self.assert_422(request_body(**{field: DELETE}), field)

    def test_null_required_field_is_422(self):
        for field in REQUIRED:
            with self.subTest(field=field):
                self.assert_422(request_body(**{field: None}), field)

    def test_each_wrong_type_is_422(self):
        for field, values in WRONG_TYPES.items():
            for value in values:
                with self.subTest(field=field, value=value):
                    self.assert_422(request_body(**{field: value}), field)

    def test_each_out_of_range_number_is_422(self):
        for field, values in OUT_OF_RANGE.items():
            for value in values:
                with self.subTest(field=field, value=value):
                    self.assert_422(request_body(**{field: value}), field)

    def test_each_unknown_enum_value_is_422(self):
        for field, values in BAD_ENUMS.items():
            for value in values:
                with self.subTest(field=field, value=value):
                    doc = self.assert_422(request_body(**{field: value}),
                                          field)
                    self.assertIn("must be one of",
                                  doc["error"]["message"])

    def test_empty_and_blank_prompt_are_422(self):
        for value in ["", "   ", "\n\t"]:
            self.assert_422(request_body(prompt=value), "prompt")

    def test_too_long_prompt_is_422(self):
        self.assert_422(request_body(prompt="x" * 2001), "prompt")

    def test_body_that_is_not_an_object_is_422(self):
        for body in (b"[]", b'"text"', b"5", b"null"):
            r = self.server.generate(body, headers={
                "Content-Type": "application/json"})
            self.assertEqual(r.status, 422, body)

    def test_malformed_json_is_400(self):
        h = self.server.auth()
        h["Content-Type"] = "application/json"
        r = self.server.request("POST", "/v1/ula/generate-video",
                                b'{"model": ', h)
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json["error"]["code"], "invalid_json")

    def test_empty_body_is_422(self):
        r = self.server.request("POST", "/v1/ula/generate-video",
                                headers=self.server.auth())
        self.assertEqual(r.status, 422)

    def test_unsupported_content_type_is_415(self):
        h = self.server.auth()
        h["Content-Type"] = "text/plain"
        r = self.server.request("POST", "/v1/ula/generate-video", b"hi", h)
        self.assertEqual(r.status, 415)

    def test_body_over_the_limit_is_413(self):
        body = request_body(prompt="x" * 2_000_000)
        r = self.server.generate(body)
        self.assertEqual(r.status, 413)

    def test_unknown_model_is_400_and_lists_models(self):
        r = self.server.generate(request_body(model="no-such-model"))
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json["error"]["field"], "model")
        self.assertIn("vidgate-local", r.json["error"]["message"])

    def test_unsupported_combinations_are_400_naming_allowed_values(self):
        base = dict(model="restricted-t2v", resolution="720P",
                    aspect_ratio="16:9", duration=5, generate_audio=False)
        cases = [
            ("resolution", "480P", "720P"),
            ("aspect_ratio", "1:1", "16:9"),
            ("duration", 6, "10"),
            ("fps", 30, "24"),
            ("generate_audio", True, None),
        ]
        for field, value, allowed in cases:
            with self.subTest(field=field):
                body = request_body(**dict(base, **{field: value}))
                r = self.server.generate(body)
                self.assertEqual(r.status, 400, r)
                self.assertEqual(r.json["error"]["field"], field)
                if allowed:
                    self.assertIn(allowed, r.json["error"]["message"])

    def test_images_on_a_text_only_model_are_400(self):
        png = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYA"
               "AAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
        body = request_body(model="restricted-t2v", resolution="720P",
                            aspect_ratio="16:9", duration=5, files=[png])
        r = self.server.generate(body)
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json["error"]["field"], "files")

    def test_schema_errors_come_before_model_errors(self):
        r = self.server.generate(request_body(model="no-such-model",
                                              duration=99))
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json["error"]["field"], "duration")

    def test_non_image_data_url_is_415(self):
        body = request_body(files=["data:image/png;base64,aGVsbG8gd29ybGQ="])
        r = self.server.generate(body)
        self.assertEqual(r.status, 415)


class Multipart(ServerTest):
    config = CONFIG

    def form(self, **overrides):
        fields = {k: (str(v).lower() if isinstance(v, bool) else str(v))
                  for k, v in request_body(**overrides).items()}
        return fields

    def post(self, fields, files=()):
        body, ctype = multipart(fields, files)
        h = self.server.auth()
        h["Content-Type"] = ctype
        return self.server.request("POST", "/v1/ula/generate-video", body, h)

    def test_integer_strings_must_be_plain_integers(self):
        for value in ["5x", "", " 5", "5.0", "five", "0x5", "5 "]:
            with self.subTest(value=value):
                fields = self.form()
                fields["duration"] = value
                r = self.post(fields)
                self.assertEqual(r.status, 422, (value, r))
                self.assertEqual(r.json["error"]["field"], "duration")

    def test_boolean_strings_must_be_true_or_false(self):
        for value in ["yes", "1", "", "on"]:
            with self.subTest(value=value):
                fields = self.form()
                fields["generate_audio"] = value
                r = self.post(fields)
                self.assertEqual(r.status, 422, (value, r))
                self.assertEqual(r.json["error"]["field"], "generate_audio")

    def test_missing_form_field_is_422(self):
        for field in REQUIRED:
            with self.subTest(field=field):
                fields = self.form()
                del fields[field]
                r = self.post(fields)
                self.assertEqual(r.status, 422)
                self.assertEqual(r.json["error"]["field"], field)

    def test_out_of_range_form_number_is_422(self):
        fields = self.form()
        fields["duration"] = "13"
        r = self.post(fields)
        self.assertEqual(r.status, 422)

    def test_form_strings_are_parsed(self):
        fields = self.form()
        fields.update(duration="4", generate_audio="TRUE",
                      camera_fixed="false", fps="24", seed="7")
        r = self.post(fields)
        check_video(self, self.server, r, fields)
        self.assertEqual(r.header("X-Vidgate-Seed"), "7")

    def test_non_image_file_is_415(self):
        r = self.post(self.form(), [("files", "cat.png", b"GIF89a....",
                                     "image/png")])
        self.assertEqual(r.status, 415)
        self.assertEqual(r.json["error"]["field"], "files")

    def test_file_in_a_part_not_named_files_is_422(self):
        png = open_png()
        r = self.post(self.form(), [("image", "cat.png", png, "image/png")])
        self.assertEqual(r.status, 422)

    def test_too_many_files_is_413(self):
        png = open_png()
        files = [("files", "%d.png" % i, png, "image/png") for i in range(5)]
        r = self.post(self.form(), files)
        self.assertEqual(r.status, 413)


class Accepted(ServerTest):
    """Spellings the contract accepts render successfully."""
    config = CONFIG

    def test_lower_case_resolution_is_accepted(self):
        body = request_body(resolution="480p")
        r = self.server.generate(body)
        check_video(self, self.server, r, body)
        self.assertEqual(r.json["data"]["resolution"], "480*480")

    def test_aspect_ratio_aliases_are_accepted(self):
        for alias, size in [("landscape", "854*480"),
                            ("portrait", "480*854"),
                            ("square", "480*480")]:
            with self.subTest(alias=alias):
                body = request_body(aspect_ratio=alias)
                r = self.server.generate(body)
                check_video(self, self.server, r, body)
                self.assertEqual(r.json["data"]["resolution"], size)

    def test_fps_defaults_to_24_and_seed_is_reported(self):
        body = request_body(fps=DELETE, seed=DELETE)
        r = self.server.generate(body)
        check_video(self, self.server, r, body)   # fps 24 expected
        self.assertTrue(r.header("X-Vidgate-Seed").isdigit())

    def test_unknown_extra_fields_are_ignored(self):
        body = request_body(negative_prompt="blur")
        r = self.server.generate(body)
        check_video(self, self.server, r, body)


def open_png():
    import base64
    return base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8Dw"
        "HwAFBQIAX8jx0gAAAABJRU5ErkJggg==")


if __name__ == "__main__":
    unittest.main()
