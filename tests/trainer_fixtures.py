"""The trainer keys every end-to-end test shares (``from trainer_fixtures import quiet_trainer``).

A test's ``trainer`` section is ``quiet_trainer(max_epochs=1, ...)``: CPU, one device, no progress bar and
no model summary, so a failing test's log shows only what the test checks. The keyword arguments are the
test's own keys and win over these.
"""

from __future__ import annotations

from typing import Any

#: the keys of a quiet CPU trainer section
QUIET: dict[str, Any] = {"accelerator": "cpu", "devices": 1, "progress_bar": False, "enable_model_summary": False}


def quiet_trainer(**keys: Any) -> dict[str, Any]:
    """The ``trainer`` section of a test config: :data:`QUIET` updated with ``keys``."""
    return {**QUIET, **keys}
