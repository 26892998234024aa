"""Test-wide settings: property tests are deterministic in CI (never flaky), random locally."""

from __future__ import annotations

import os

from hypothesis import settings

# CI (CI=true) runs the same examples every time; a developer's run explores new ones and
# keeps failures in the local example database.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
