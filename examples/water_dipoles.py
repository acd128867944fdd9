"""Molecular dipole of water along a polarff run: permanent (charges), induced and total.

A check of the electrostatics a model gives liquid water: experiment and ab initio MD put the mean
molecular dipole of liquid water at about 2.6–3.0 D (gas phase 1.855 D); AMOEBA gives 2.78 D. Each water's
dipole is taken about its O atom (the molecule is nearly neutral, so the origin hardly matters for the
permanent part): permanent = Σ q_i (r_i − r_O) over its three atoms,
induced = Σ μ_i, total = their sum. Magnitudes are averaged over molecules and frames.

Usage (a finished ``polarff simulate`` / ``polarff benchmark`` run folder of pure water)::

    python examples/water_dipoles.py build/benchmark-esp/runs/polarff-water --frames 6
"""

from __future__ import annotations

import argparse

import numpy as np

#: Debye per e·nm.
DEBYE_PER_E_NM = 48.0320


def water_dipoles(run_folder: str, n_frames: int = 6, model: str | None = None) -> dict[str, float]:
    """Mean |μ| (D) of the water molecules: ``permanent``, ``induced``, ``total`` (and their spread).

    Parameters
    ----------
    run_folder : str
        Run folder of ``polarff.simulate.run_simulation`` (the ``model``, ``topology``, ``cutoff_nm`` and
        ``electrostatics`` of its ``run.json`` are used).
    n_frames : int
        Frames taken evenly over the run.
    model : str, optional
        Model file instead of the one in the run's config.
    """
    import json
    from pathlib import Path

    import torch

    from polarff.artifact import load_model
    from polarff.openmm.system import build_potential
    from polarff.simulate import RUN_RECORD, load_trajectory, read_pdb

    config = json.loads((Path(run_folder) / RUN_RECORD).read_text())["config"]
    traj = load_trajectory(run_folder)
    symbols = list(traj["symbols"])
    topology, _, _ = read_pdb(config["topology"])
    module = build_potential(load_model(model or config["model"]), topology,
                             electrostatics={"cutoff_nm": float(config["cutoff_nm"]),  # as create_system sets it
                                             "induction_cutoff_nm": min(float(config["cutoff_nm"]), 0.9),
                                             **(config.get("electrostatics") or {})})
    oxygens = [i for i, s in enumerate(symbols) if s == "O"]
    waters = [(o, o + 1, o + 2) for o in oxygens if symbols[o + 1] == "H" and symbols[o + 2] == "H"]
    picks = np.linspace(0, len(traj["positions"]) - 1, n_frames).round().astype(int)
    values: dict[str, list[float]] = {"permanent": [], "induced": [], "total": []}
    for k in picks:
        pos = torch.tensor(traj["positions"][k], dtype=torch.float64)
        box = torch.tensor(traj["box"][k], dtype=torch.float64)
        props = module.properties(pos, box)
        q = props["charges"].detach().numpy()
        mu = props["induced_dipoles"].detach().numpy()
        x = traj["positions"][k]
        for w in waters:
            w = list(w)
            permanent = q[w] @ (x[w] - x[w[0]])
            induced = mu[w].sum(axis=0)
            for name, vec in (("permanent", permanent), ("induced", induced), ("total", permanent + induced)):
                values[name].append(float(np.linalg.norm(vec)) * DEBYE_PER_E_NM)
    out = {}
    for name, v in values.items():
        out[name] = float(np.mean(v))
        out[f"{name}_std"] = float(np.std(v))
    out["n_molecules"] = len(waters)
    out["n_frames"] = len(picks)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="run folder of a polarff pure-water (or solution) run")
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--model", help="model file (default: the run's)")
    args = p.parse_args(argv)
    r = water_dipoles(args.run, args.frames, args.model)
    print(f"{r['n_molecules']} waters × {r['n_frames']} frames: |μ| permanent {r['permanent']:.2f} ± "
          f"{r['permanent_std']:.2f} D, induced {r['induced']:.2f} ± {r['induced_std']:.2f} D, total "
          f"{r['total']:.2f} ± {r['total_std']:.2f} D (± = spread over molecules)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
