"""docs/openapi.yaml describes every route of the server, and nothing
else: each (method, path) of src/api/routes.c has an operation there, and
each operation there is a route (paths compared with parameters as
wildcards). The route comparison reads the file with the standard
library: its layout (two-space indents, one key per line) is the contract
of this test; a YAML parser (python3-yaml) checks that the file parses at
all, since the tools that read it need that."""
import os
import re
import unittest

SOURCE = os.environ.get("VG_SOURCE_DIR", "../..")
METHODS = ("get", "post", "put", "patch", "delete")


def routes():
    text = open(os.path.join(SOURCE, "src/api/routes.c")).read()
    found = set()
    for method, path in re.findall(r'\{"([A-Z]+)", "([^"]+)"', text):
        found.add((method.lower(), path.replace("**", "*")))
    return found


def described():
    found = set()
    path = None
    in_paths = False
    for line in open(os.path.join(SOURCE, "docs/openapi.yaml")):
        if not line.strip():
            continue
        if not line.startswith(" "):
            in_paths = line.startswith("paths:")
            continue
        if not in_paths:
            continue
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            path = re.sub(r"\{[^}]+\}", "*", m.group(1))
            continue
        m = re.match(r"^    ([a-z]+):", line)
        if m and path and m.group(1) in METHODS:
            found.add((m.group(1), path))
    return found


class OpenApiDescription(unittest.TestCase):
    def test_every_route_is_described(self):
        missing = routes() - described()
        self.assertEqual(missing, set(), "routes missing from openapi.yaml")

    def test_every_description_is_a_route(self):
        extra = described() - routes()
        self.assertEqual(extra, set(), "openapi.yaml operations with no route")

    def test_the_file_is_valid_yaml(self):
        # python3-yaml comes with the test dependencies (scripts/deps.sh):
        # tools that read the description need it to parse at all.
        import yaml
        with open(os.path.join(SOURCE, "docs/openapi.yaml")) as f:
            doc = yaml.safe_load(f)
        self.assertEqual(doc["openapi"][:3], "3.1")
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method in METHODS:
                    self.assertIn("responses", op, (method, path))

    def test_webhooks_and_security_are_described(self):
        text = open(os.path.join(SOURCE, "docs/openapi.yaml")).read()
        self.assertIn("\nwebhooks:\n  jobEnded:", text)
        self.assertIn("securitySchemes:", text)


if __name__ == "__main__":
    unittest.main()
