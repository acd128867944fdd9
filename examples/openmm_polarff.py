"""A user's whole OpenMM program with a polarff model: NaCl(aq) box → System → Langevin MD.

Usage::

    python examples/openmm_polarff.py --model forcefields/nacl_gfn2.pff --waters 64 --pairs 1 --steps 1000

Writes ``box.pdb`` (starting structure), ``traj.dcd`` and ``state.csv`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="forcefields/nacl_gfn2.pff", help="trained polarff model (.pff)")
    parser.add_argument("--waters", type=int, default=64, help="water molecules")
    parser.add_argument("--pairs", type=int, default=1, help="Na+/Cl- pairs")
    parser.add_argument("--steps", type=int, default=1000, help="MD steps of 1 fs")
    parser.add_argument("--cutoff", type=float, default=0.6, help="nonbonded cutoff (nm)")
    parser.add_argument("--out", default="openmm-example", help="output folder")
    args = parser.parse_args(argv)

    import torch  # noqa: F401  (import before openmm so the openmm-torch plugin loads)
    from openmm import LangevinMiddleIntegrator, Platform, unit
    from openmm import app

    from polarff.build import build_ion_box, write_topology_pdb
    from polarff.openmm.system import create_system

    os.makedirs(args.out, exist_ok=True)
    topology, positions, box = build_ion_box("NaCl", args.pairs, args.waters, seed=0)
    pdb_path = os.path.join(args.out, "box.pdb")
    write_topology_pdb(topology, positions, box, pdb_path)

    pdb = app.PDBFile(pdb_path)  # what a user starts from
    system = create_system(args.model, pdb.topology, nonbonded_cutoff_nm=args.cutoff)  # fixed terms + polarff
    integrator = LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.001 * unit.picoseconds)
    simulation = app.Simulation(pdb.topology, system, integrator, Platform.getPlatformByName("CPU"),
                                {"Threads": "1"})
    simulation.context.setPositions(pdb.positions)
    simulation.minimizeEnergy(maxIterations=100)
    every = max(1, min(100, args.steps))  # report interval (steps)
    simulation.reporters.append(app.DCDReporter(os.path.join(args.out, "traj.dcd"), every))
    simulation.reporters.append(app.StateDataReporter(os.path.join(args.out, "state.csv"), every, step=True,
                                                      potentialEnergy=True, temperature=True, speed=True))
    simulation.reporters.append(app.StateDataReporter(sys.stdout, max(args.steps // 10, 1), step=True,
                                                      potentialEnergy=True, temperature=True,
                                                      remainingTime=True, totalSteps=args.steps))
    simulation.step(args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
