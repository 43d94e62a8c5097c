"""The ``ctr`` recipe (gatelab.recsys.recipes.ctr): the shipped example configs equal its cells."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("model", ["finalmlp", "dualmlp", "gdcn-p", "gdcn-s", "dcnv2", "dnn", "deepfm", "lr"])
def test_shipped_configs_equal_the_presets(model):
    """docs/examples/ctr/<model>_frappe.yaml (for `gatelab train --config`) match the repro presets."""
    from pathlib import Path

    from gatelab.core.config import to_dict
    from gatelab.core.harness import ExperimentConfig
    from gatelab.recsys.recipes.ctr import ctr_config

    path = Path(__file__).resolve().parents[3] / "docs" / "examples" / "ctr" / f"{model}_frappe.yaml"
    assert to_dict(ExperimentConfig.load(path)) == to_dict(ctr_config(model, "frappe"))
