"""Kinetic temperature of a Langevin run in native mode (``create_native_system``) against the thermostat's.

Native mode refreshes the model's charges and polarizabilities every N steps; between refreshes the force lacks
the charge-gradient term. This script measures what that does to the sampled temperature: Langevin
(1 ps⁻¹, 2 fs) at 298.15 K on a box from a PDB file, kinetic temperature every 0.2 ps after 2 ps.

Example (docs/native-mode.md; a few minutes per update interval on one core)::

    OMP_NUM_THREADS=1 python examples/native_temperature.py build/benchmark-water113-hardness/boxes/water.pdb \\
        --model forcefields/nacl_gfn2_water113_hardness.pff --update 10 --ps 30
"""

from __future__ import annotations

import argparse

import numpy as np

BOLTZMANN_KJ_MOL_K = 0.0083144626


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdb", help="periodic box (PDB with CRYST1), residues HOH/NA/CL")
    parser.add_argument("--model", default="forcefields/nacl_gfn2_water113_hardness.pff")
    parser.add_argument("--mode", default="amoeba", choices=["amoeba", "drude"])
    parser.add_argument("--update", type=int, default=10, help="steps between parameter refreshes")
    parser.add_argument("--ps", type=float, default=30.0, help="run length (ps)")
    parser.add_argument("--cutoff", type=float, default=0.612, help="nonbonded cutoff (nm)")
    args = parser.parse_args(argv)

    import torch  # noqa: F401  (before openmm, so the openmm-torch plugin loads)
    import openmm
    from openmm import app, unit

    from polarff.openmm.native import create_native_system

    pdb = app.PDBFile(args.pdb)
    positions = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    native = create_native_system(args.model, pdb.topology, positions, mode=args.mode,
                                  update_interval=args.update, nonbonded_cutoff_nm=args.cutoff)
    integrator = openmm.LangevinMiddleIntegrator(298.15, 1.0, 0.002)
    context = openmm.Context(native.system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(native.positions_nm)
    context.setVelocitiesToTemperature(298.15, 3)
    native.updater.update(context)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 50)
    system = native.system
    dof = 3 * sum(system.getParticleMass(i).value_in_unit(unit.dalton) > 0 for i in range(system.getNumParticles())) \
        - system.getNumConstraints() - 3
    temperatures = []
    for _ in range(int(round(args.ps / 0.2))):
        native.updater.step(context, 100)
        kinetic = context.getState(getEnergy=True).getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        temperatures.append(2.0 * kinetic / (dof * BOLTZMANN_KJ_MOL_K))
    t = np.array(temperatures[10:])  # after the first 2 ps
    if len(t) < 5:
        raise SystemExit(f"--ps {args.ps:g}: need at least 3 ps (2 ps settling plus 5 samples)")
    blocks = np.array([b.mean() for b in np.array_split(t, 5)])
    print(f"{args.mode} mode, update every {args.update} steps: T = {t.mean():.1f} ± "
          f"{blocks.std(ddof=1) / np.sqrt(len(blocks)):.1f} K over 2–{args.ps:g} ps (thermostat 298.15 K)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
