"""Hydration energy of the NaCl pair from the finished runs of ``polarff benchmark``, split into terms.

ΔU_hyd = ⟨U⟩(64 H₂O + Na⁺ + Cl⁻) − ⟨U⟩(64 H₂O): the energy of taking both ions from the gas phase (where an
isolated rigid water or ion has zero energy in polarff and in TIP3P) into the water, water reorganization
included. For polarff runs the difference is split into permanent-charge electrostatics, induction and
the electronegativity term (models fitted with ``polarff fit-electronegativity``) and the rest (the
Lennard-Jones fixed terms), and, on a few frames, the RMS force per species is split into
the part at fixed charges and polarizabilities and the part from their gradients (−Σ_j ∂E/∂q_j ∇q_j − …).

Experiment: −777 kJ/mol (:data:`polarff.analysis.structure.NACL_HYDRATION_ENERGY_KJ_MOL`, with its
source). ``polarff benchmark`` reports the total; this script adds the split and the forces.

Example (docs/charge-calibration.md)::

    python examples/ion_hydration_energy.py build/benchmark-water111 --forces 8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from polarff.analysis.structure import NACL_HYDRATION_ENERGY_KJ_MOL, pair_hydration_energy

def force_split(run_dir: str, n_frames: int) -> dict[str, tuple[float, float]]:
    """RMS force per atom of each species (kJ/mol/nm) on ``n_frames`` frames of a polarff run: (charges and
    α held fixed, from their gradients); the potential is built as the run built it."""
    import torch

    from polarff.electronegativity import potential_for_run
    from polarff.simulate import load_trajectory

    traj = load_trajectory(run_dir)
    potential, _, symbols = potential_for_run(run_dir)
    rms: dict[str, list] = {s: [] for s in dict.fromkeys(symbols)}
    for k in np.linspace(0, len(traj["positions"]) - 1, n_frames).astype(int):
        pos = torch.tensor(traj["positions"][k], dtype=torch.float64, requires_grad=True)
        box = torch.tensor(traj["box"][k], dtype=torch.float64)
        q, alpha = potential.charges_and_polarizabilities(pos, box)
        (g_all,) = torch.autograd.grad(potential.energy_from_charges(pos, box, q, alpha), pos)
        (g_held,) = torch.autograd.grad(potential.energy_from_charges(pos, box, q.detach(), alpha.detach()), pos)
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
    salt, water = load_trajectory(str(runs / args.salt)), load_trajectory(str(water_runs / args.water))
    result = pair_hydration_energy(salt, water)
    print(f"ΔU_hyd(Na+ + Cl-), {args.salt} − {args.water} (kJ/mol; experiment {NACL_HYDRATION_ENERGY_KJ_MOL:.0f}):")
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
