"""How many examples the randomised (hypothesis) tests try.

The counts in the tests are those of a thorough run. The everyday run, and CI
on two cores, tries half of each: every property and every assertion is the
same, over fewer random inputs. ``REXEC_TEST_THOROUGH=1`` runs the full counts
(before a release, or after a change to the protocol core or the server's
state handling).
"""

from __future__ import annotations

import os

THOROUGH = os.environ.get("REXEC_TEST_THOROUGH") == "1"


def examples(thorough: int) -> int:
    """``thorough`` in a thorough run, else half of it (never fewer than 10)."""
    return thorough if THOROUGH else max(10, thorough // 2)
