"""The example scripts users copy actually run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openmm_example_runs(trained_model, tmp_path):
    example = load("openmm_polarff")
    out = tmp_path / "run"
    assert example.main(["--model", str(trained_model[2]), "--waters", "32", "--steps", "20", "--cutoff", "0.45",
                         "--out", str(out)]) == 0
    assert (out / "traj.dcd").stat().st_size > 0
    lines = (out / "state.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith('#"Step"') and lines[1].startswith("20,")
