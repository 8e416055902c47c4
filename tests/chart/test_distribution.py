"""What a user gets besides the code (issue 18): the LICENSE, and a README
that needs nothing outside the repository."""

import os
import re
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


class DistributionTest(unittest.TestCase):
    def test_license_is_apache_2_in_full(self):
        text = read("LICENSE")
        self.assertTrue(text.lstrip().startswith("Apache License\n"), text[:80])
        self.assertIn("Version 2.0, January 2004", text)
        for section in ("1. Definitions.", "2. Grant of Copyright License.",
                        "3. Grant of Patent License.", "4. Redistribution.",
                        "9. Accepting Warranty or Additional Liability.",
                        "END OF TERMS AND CONDITIONS"):
            self.assertIn(section, text)
        self.assertIn("Apache License 2.0", read("README.md"))

    def test_readme_and_docs_stay_inside_the_repository(self):
        """No path leaving the repository (../ or an absolute path of this
        machine) in the README or docs/; every docs/ or charts/ path the
        README names in backquotes exists."""
        docs = ["README.md"] + [os.path.join("docs", n) for n in os.listdir(
            os.path.join(ROOT, "docs")) if n.endswith(".md")]
        for name in docs:
            text = read(name)
            with self.subTest(doc=name):
                self.assertEqual(re.findall(r"(?<![.\w])\.\./[\w./-]*", text), [])
                self.assertEqual(re.findall(r"/work/[\w./-]*", text), [])
                self.assertNotIn("shared/DESIGN.md", text)
        for path in set(re.findall(r"`((?:docs|charts)/[\w./-]+?)/?`", read("README.md"))):
            with self.subTest(path=path):
                self.assertTrue(os.path.exists(os.path.join(ROOT, path)), path)
        self.assertTrue(os.path.exists(os.path.join(ROOT, "docs", "DESIGN.md")))


if __name__ == "__main__":
    unittest.main()
