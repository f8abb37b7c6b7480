"""The command line's exit statuses: an unknown command (or subcommand)
is status 2 with a one-line message, whatever else the line holds
(--help included), so a script never takes a typo for success; --help
on its own or with a known command prints the usage and exits 0."""
import os
import shutil
import subprocess
import tempfile
import unittest

from vg import VIDGATE


class ExitStatus(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vg-cli-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def run_cli(self, *args):
        return subprocess.run([VIDGATE, "--data",
                               os.path.join(self.dir, "data")] + list(args),
                              capture_output=True, text=True, timeout=60)

    def test_unknown_commands_are_status_2_with_one_line(self):
        for args in (["generate", "--help"], ["generate"], ["bogus"],
                     ["keys", "bogus"], ["ledger", "fix"]):
            with self.subTest(args=args):
                p = self.run_cli(*args)
                self.assertEqual(p.returncode, 2, p)
                self.assertEqual(p.stdout, "")
                lines = p.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, p.stderr)
                self.assertIn("unknown command", lines[0])

    def test_help_is_status_0_on_stdout(self):
        for args in (["--help"], ["keys", "--help"], ["-h"]):
            with self.subTest(args=args):
                p = self.run_cli(*args)
                self.assertEqual(p.returncode, 0, p)
                self.assertIn("usage: vidgate", p.stdout)

    def test_no_command_is_status_2_with_the_usage(self):
        p = self.run_cli()
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage: vidgate", p.stderr)


if __name__ == "__main__":
    unittest.main()
