"""Hydration energy of the NaCl pair from the finished runs of ``polarff benchmark``, split into terms.

ΔU_hyd = ⟨U⟩(64 H₂O + Na⁺ + Cl⁻) − ⟨U⟩(64 H₂O): the energy of taking both ions from the gas phase (where an
isolated rigid water or ion has zero energy in polarff and in TIP3P) into the water, water reorganization
included. For polarff runs the difference is split into permanent-charge electrostatics, induction and
the rest (the Lennard-Jones fixed terms), and, on a few frames, the RMS force per species is split into
the part at fixed charges and polarizabilities and the part from their gradients (−Σ_j ∂E/∂q_j ∇q_j − …).

Experiment: ΔH_hyd(Na⁺ + Cl⁻) = ΔH_solution(∞ dilution, +3.9 kJ/mol) − lattice enthalpy (786 kJ/mol) =
−782 kJ/mol (CRC Handbook of Chemistry and Physics, 'Lattice energies' and 'Enthalpy of dilution/solution'
tables); ΔU = ΔH + 2RT = −777 kJ/mol (two gas particles less).

Example (docs/charge-calibration.md)::

    python examples/ion_hydration_energy.py build/benchmark-water111 --forces 8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: ΔU_hyd(Na⁺ + Cl⁻) from experiment (kJ/mol), see the module docstring.
EXPERIMENT_KJ_MOL = -777.0
TERMS = {"total": "potential_energy", "permanent": "polarff_permanent_energy",
         "induction": "polarff_induction_energy"}


def block_mean(values: np.ndarray, n_blocks: int = 5) -> tuple[float, float]:
    """Mean and standard error of ``n_blocks`` contiguous block means."""
    means = np.array([b.mean() for b in np.array_split(np.asarray(values, dtype=float), n_blocks)])
    return float(means.mean()), float(means.std(ddof=1) / np.sqrt(n_blocks))


def hydration_energy(salt: dict, water: dict, n_blocks: int = 5) -> dict[str, tuple[float, float]]:
    """⟨U⟩ difference (kJ/mol, ± standard error) between the salt and the pure-water trajectory, by term.

    Both trajectories must hold the same number of waters. Terms: ``total`` always; ``permanent``,
    ``induction`` and ``rest`` (total − both) when the salt trajectory has non-zero polarff energy terms.
    """
    n_salt, n_water = (int(np.sum(np.asarray(t["symbols"]).astype(str) == "O")) for t in (salt, water))
    if n_salt != n_water:
        raise ValueError(f"the salt box has {n_salt} waters and the water box {n_water}: expected the same")
    series = {}
    for name, key in TERMS.items():
        if key in salt and key in water and (name == "total" or np.any(np.asarray(salt[key]) != 0)):
            series[name] = (np.asarray(salt[key]), np.asarray(water[key]))
    if "permanent" in series and "induction" in series:
        series["rest"] = tuple(series["total"][k] - series["permanent"][k] - series["induction"][k] for k in (0, 1))
    out = {}
    for name, (s, w) in series.items():
        (a, ea), (b, eb) = block_mean(s, n_blocks), block_mean(w, n_blocks)
        out[name] = (a - b, float(np.hypot(ea, eb)))
    return out


def force_split(run_dir: str, n_frames: int) -> dict[str, tuple[float, float]]:
    """RMS force per atom of each species (kJ/mol/nm) on ``n_frames`` frames of a polarff run: (charges and
    α held fixed, from their gradients); the potential is built as the run built it."""
    import json

    import torch

    from polarff.artifact import load_model
    from polarff.openmm.system import build_potential, topology_symbols
    from polarff.simulate import load_trajectory, read_pdb

    config = json.loads((Path(run_dir) / "run.json").read_text())["config"]
    traj = load_trajectory(run_dir)
    topology, _, _ = read_pdb(str(Path(run_dir) / "start.pdb"))
    symbols = np.array(topology_symbols(topology))
    cutoff = config["cutoff_nm"]  # as create_system sets them
    options = {"cutoff_nm": cutoff, "induction_cutoff_nm": min(cutoff, 0.9), **(config.get("electrostatics") or {})}
    potential = build_potential(load_model(config["model"]), topology, electrostatics=options)
    rms: dict[str, list] = {s: [] for s in dict.fromkeys(symbols)}
    for k in np.linspace(0, len(traj["positions"]) - 1, n_frames).astype(int):
        pos = torch.tensor(traj["positions"][k], dtype=torch.float64, requires_grad=True)
        box = torch.tensor(traj["box"][k], dtype=torch.float64)
        q, alpha = potential.charges_and_polarizabilities(pos, box)
        (g_all,) = torch.autograd.grad(potential.electrostatics(pos, box, q, alpha), pos)
        (g_held,) = torch.autograd.grad(potential.electrostatics(pos, box, q.detach(), alpha.detach()), pos)
        held, gradient = -g_held.numpy(), (g_held - g_all).numpy()
        for s in rms:
            m = symbols == s
            rms[s].append((np.sqrt((held[m] ** 2).sum(1).mean()), np.sqrt((gradient[m] ** 2).sum(1).mean())))
    return {s: tuple(float(x) for x in np.mean(v, axis=0)) for s, v in rms.items()}


def main(argv: list[str] | None = None) -> int:
    from polarff.simulate import load_trajectory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="polarff benchmark output folder")
    parser.add_argument("--salt", default="polarff-nacl", help="salt run (default polarff-nacl)")
    parser.add_argument("--water", default="polarff-water", help="pure-water run with as many waters")
    parser.add_argument("--water-folder", help="benchmark folder of the water run (default: FOLDER)")
    parser.add_argument("--forces", type=int, default=0, metavar="N", help="split the forces on N salt frames")
    args = parser.parse_args(argv)
    runs = Path(args.folder) / "runs"
    water_runs = Path(args.water_folder or args.folder) / "runs"
    result = hydration_energy(load_trajectory(str(runs / args.salt)), load_trajectory(str(water_runs / args.water)))
    print(f"ΔU_hyd(Na+ + Cl-), {args.salt} − {args.water} (kJ/mol; experiment {EXPERIMENT_KJ_MOL:.0f}):")
    for name, (value, error) in result.items():
        print(f"  {name:10s} {value:8.1f} ± {error:4.1f}")
    if args.forces:
        split = force_split(str(runs / args.salt), args.forces)
        print(f"RMS force per atom over {args.forces} frames (kJ/mol/nm): charges and α held | from their gradients")
        for s, (held, gradient) in split.items():
            print(f"  {s:2s} {held:7.0f} {gradient:7.0f}  ({100 * gradient / held:.0f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
