"""docs/guarantees.md names the test behind each promise: every name must exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_the_guarantees_page_names_exists():
    page = (ROOT / "docs" / "guarantees.md").read_text()
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", page))
    assert len(named) > 20
    defined = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_[a-z0-9_]+)", path.read_text(), flags=re.M))
    assert not named - defined, f"the page names tests that do not exist: {sorted(named - defined)}"
