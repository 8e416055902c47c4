"""scheduler/status_page.c is generated from scheduler/status_page.html by
tools/embed_page.py: the committed .c must be what the .html gives."""
import os
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class EmbedPageTest(unittest.TestCase):
    def test_generated_c_is_current(self):
        want = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "embed_page.py"),
                               "--print"], capture_output=True, text=True, check=True).stdout
        with open(os.path.join(ROOT, "scheduler", "status_page.c")) as f:
            self.assertEqual(f.read(), want,
                             "run python3 tools/embed_page.py after editing status_page.html")


if __name__ == "__main__":
    unittest.main()
