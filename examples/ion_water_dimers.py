"""Gas-phase binding of the water dimer, Na⁺·H₂O and Cl⁻·H₂O: a polarff model against counterpoise MP2.

For each dimer the model's own minimum is found (its fixed terms included, rigid TIP3P water, no cutoff,
OpenMM's local minimizer). The second fragment (the ion, or the acceptor water) is then moved along the line
from the donor water's O to it, and at each distance the binding energy

    E_bind = E(dimer) − E(fragment A) − E(fragment B)

is computed with the model and with MP2 (pyscf; frozen core, counterpoise correction of
Boys and Bernardi: each fragment in the full dimer basis). A parabola through the three lowest MP2 points
gives the MP2 minimum along that line, at the model's orientation. Isolated rigid waters and ions have zero
energy in polarff, so E_bind is also the model's energy of the dimer.

What it tells: whether the model's ion–water binding is right relative to its water–water binding. MP2 with
aug-cc-pVTZ is within about 1 kJ/mol of the CCSD(T) complete-basis limit for these hydrogen bonds; the
rigid TIP3P monomer and the model's orientation are kept, so the MP2 numbers are not the relaxed minima.

Example (docs/chloride.md)::

    python examples/ion_water_dimers.py --model forcefields/nacl_gfn2_water113_hardness.pff
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HARTREE_KJ_MOL = 2625.499639
OH_NM, HOH_RAD = 0.09572, np.deg2rad(104.52)  # TIP3P geometry (the fixed terms constrain it)
DIMERS = ("water", "Na", "Cl")
SCAN_A = (-0.6, -0.45, -0.3, -0.15, 0.0, 0.15, 0.3)  # offsets from the model's minimum along the line (Å)


def water(origin=(0.0, 0.0, 0.0), rotation=None) -> np.ndarray:
    """TIP3P water (O, H, H) in nm, the H–O–H plane xy, the bisector along +y."""
    half = 0.5 * HOH_RAD
    xyz = np.array([[0.0, 0.0, 0.0], [OH_NM * np.sin(half), OH_NM * np.cos(half), 0.0],
                    [-OH_NM * np.sin(half), OH_NM * np.cos(half), 0.0]])
    if rotation is not None:
        xyz = xyz @ np.asarray(rotation).T
    return xyz + np.asarray(origin)


def dimer_start(kind: str) -> tuple[list[str], np.ndarray, int]:
    """Symbols, starting positions (nm) and the index where fragment B starts, for ``kind`` in DIMERS."""
    donor = water()
    h_dir = donor[1] / np.linalg.norm(donor[1])
    if kind == "water":  # acceptor O on the donor's O–H line, its plane perpendicular to the donor's
        acceptor = water(donor[1] + 0.19 * h_dir, rotation=[[0, 0, 1], [0, 1, 0], [-1, 0, 0]])
        return ["O", "H", "H", "O", "H", "H"], np.vstack([donor, acceptor]), 3
    if kind == "Cl":  # Cl⁻ on the O–H line (one hydrogen bond)
        return ["O", "H", "H", "Cl"], np.vstack([donor, donor[1] + 0.22 * h_dir]), 3
    if kind == "Na":  # Na⁺ on the C2 axis, on the O side
        return ["O", "H", "H", "Na"], np.vstack([donor, [[0.0, -0.24, 0.0]]]), 3
    raise ValueError(f"dimer kind must be one of {DIMERS}, got {kind!r}")


def topology(symbols: list[str]):
    """OpenMM topology of waters (HOH, O first) and ions (NA, CL) in the order of ``symbols``."""
    from openmm import app

    top = app.Topology()
    chain = top.addChain()
    i = 0
    while i < len(symbols):
        if symbols[i] == "O":
            res = top.addResidue("HOH", chain)
            o = top.addAtom("O", app.element.oxygen, res)
            for name in ("H1", "H2"):
                top.addBond(o, top.addAtom(name, app.element.hydrogen, res))
            i += 3
        else:
            res = top.addResidue(symbols[i].upper(), chain)
            top.addAtom(symbols[i].upper(), app.element.Element.getBySymbol(symbols[i]), res)
            i += 1
    return top


class ModelEnergy:
    """Energy (kJ/mol) of a fixed set of atoms with a polarff model and its fixed terms, no cutoff."""

    def __init__(self, model, symbols: list[str]):
        import torch  # noqa: F401  (before openmm, so the openmm-torch plugin loads)
        import openmm

        from polarff.openmm.system import create_system

        system = create_system(model, topology(symbols))
        self.context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                                      openmm.Platform.getPlatformByName("Reference"))

    def __call__(self, positions_nm: np.ndarray) -> float:
        from openmm import unit

        self.context.setPositions(np.asarray(positions_nm) * unit.nanometer)
        state = self.context.getState(getEnergy=True)
        return state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    def minimize(self, positions_nm: np.ndarray) -> np.ndarray:
        """Positions (nm) at the local minimum reached from ``positions_nm``."""
        import openmm
        from openmm import unit

        self.context.setPositions(np.asarray(positions_nm) * unit.nanometer)
        openmm.LocalEnergyMinimizer.minimize(self.context, 1e-4, 10000)
        state = self.context.getState(getPositions=True)
        return np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))


def model_binding(model, symbols: list[str], split: int, positions_nm: np.ndarray) -> list[float]:
    """E(dimer) − E(A) − E(B) (kJ/mol) of the model for each geometry in ``positions_nm`` (shape (G, N, 3))."""
    whole, first, second = (ModelEnergy(model, s) for s in (symbols, symbols[:split], symbols[split:]))
    return [whole(p) - first(p[:split]) - second(p[split:]) for p in positions_nm]


def formal_charge(symbols: list[str]) -> int:
    return sum({"Na": 1, "Cl": -1}.get(s, 0) for s in symbols)


def mp2_binding(symbols: list[str], split: int, positions_nm: np.ndarray, basis: str = "aug-cc-pvtz") -> float:
    """Counterpoise-corrected MP2 binding energy (kJ/mol) of fragments ``[:split]`` and ``[split:]``."""
    from pyscf import gto, mp, scf

    def energy(ghost_first: bool, ghost_second: bool, charge: int) -> float:
        atoms = [((f"ghost-{s}" if (i < split and ghost_first) or (i >= split and ghost_second) else s),
                  tuple(10.0 * np.asarray(x))) for i, (s, x) in enumerate(zip(symbols, positions_nm))]
        mol = gto.M(atom=atoms, basis=basis, charge=charge, verbose=0)
        mf = scf.RHF(mol).run()
        if not mf.converged:
            raise RuntimeError(f"RHF did not converge for {symbols} (basis {basis})")
        correlation = mp.MP2(mf).set_frozen().run()
        return (mf.e_tot + correlation.e_corr) * HARTREE_KJ_MOL

    q_a, q_b = formal_charge(symbols[:split]), formal_charge(symbols[split:])
    return (energy(False, False, q_a + q_b) - energy(False, True, q_a) - energy(True, False, q_b))


def parabola_minimum(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Minimum (x, y) of the parabola through the lowest point and its two neighbours."""
    k = int(np.clip(np.argmin(y), 1, len(y) - 2))
    a, b, c = np.polyfit(x[k - 1:k + 2], y[k - 1:k + 2], 2)
    if a <= 0:
        return float(x[k]), float(y[k])
    x0 = -b / (2 * a)
    return float(x0), float(np.polyval([a, b, c], x0))


def scan_geometries(positions_nm: np.ndarray, split: int, offsets_a=SCAN_A) -> tuple[np.ndarray, np.ndarray]:
    """Fragment B moved rigidly along the line from the donor O (atom 0) to B's first atom.

    Returns the distances (Å) and the geometries (nm), shape (len(offsets), N, 3)."""
    axis = positions_nm[split] - positions_nm[0]
    distance = np.linalg.norm(axis)
    geometries = []
    for offset in offsets_a:
        moved = positions_nm.copy()
        moved[split:] += (0.1 * offset) * axis / distance
        geometries.append(moved)
    return 10.0 * distance + np.asarray(offsets_a), np.array(geometries)


def analyse(model, kind: str, basis: str = "aug-cc-pvtz", qm: bool = True) -> dict:
    """Model minimum of one dimer and, when ``qm``, the MP2 scan at the model's orientation."""
    from polarff.artifact import load_model

    model = load_model(model) if isinstance(model, (str, Path)) else model
    symbols, start, split = dimer_start(kind)
    minimum = ModelEnergy(model, symbols).minimize(start)
    distances, geometries = scan_geometries(minimum, split)
    model_curve = model_binding(model, symbols, split, geometries)
    k0 = SCAN_A.index(0.0)
    result = {"dimer": kind, "distance_model_A": float(distances[k0]), "e_model_kj_mol": model_curve[k0],
              "scan_distances_A": distances.tolist(), "model_scan_kj_mol": model_curve}
    if qm:
        mp2_curve = [mp2_binding(symbols, split, g, basis) for g in geometries]
        d_qm, e_qm = parabola_minimum(distances, np.array(mp2_curve))
        result.update({"basis": basis, "mp2_scan_kj_mol": mp2_curve, "e_mp2_at_model_kj_mol": mp2_curve[k0],
                       "distance_mp2_A": d_qm, "e_mp2_kj_mol": e_qm})
    return result


SHELL_NM = {"Na": 0.32, "Cl": 0.38}  # first minimum of the ion–O g(r), as in polarff.benchmark


def shell_cluster(traj: dict, frame: int, ion: str) -> tuple[list[str], np.ndarray]:
    """The ion and the whole waters whose O lies within :data:`SHELL_NM` of it (minimum image), from one frame
    of a run: symbols (waters first, the ion last) and positions (nm) made whole around the ion."""
    symbols = np.asarray(traj["symbols"]).astype(str)
    positions, box = np.asarray(traj["positions"][frame], float), np.diag(np.asarray(traj["box"][frame], float))
    center = positions[np.flatnonzero(symbols == ion)[0]]
    shift = lambda d: d - box * np.round(d / box)  # noqa: E731  (minimum image, orthorhombic box)
    oxygens = np.flatnonzero(symbols == "O")
    near = [o for o in oxygens if np.linalg.norm(shift(positions[o] - center)) < SHELL_NM[ion]]
    out = []
    for o in near:  # water atoms O, H, H are consecutive in polarff boxes
        for a in (o, o + 1, o + 2):
            out.append(center + shift(positions[o] - center) + shift(positions[a] - positions[o]))
    return ["O", "H", "H"] * len(near) + [ion], np.array(out + [center])


def shell_binding(model, run_dir: str, ion: str, frames: list[int], basis: str = "aug-cc-pvdz",
                  qm: bool = True) -> list[dict]:
    """Binding of an ion to its first-shell waters, E(cluster) − E(waters) − E(ion), on the given frames of a
    finished run: the model and, when ``qm``, counterpoise MP2 (Cl⁻ with six waters and aug-cc-pVDZ: about
    half an hour per frame on one busy core)."""
    from polarff.artifact import load_model
    from polarff.simulate import load_trajectory

    model = load_model(model) if isinstance(model, (str, Path)) else model
    traj = load_trajectory(run_dir)
    rows = []
    for frame in frames:
        if not 0 <= frame < len(traj["positions"]):
            raise ValueError(f"{run_dir}: frame {frame} is outside the run's {len(traj['positions'])} frames")
        symbols, positions = shell_cluster(traj, int(frame), ion)
        split = len(symbols) - 1
        row = {"frame": int(frame), "n_waters": split // 3,
               "e_model_kj_mol": model_binding(model, symbols, split, positions[None])[0]}
        if qm:
            row["e_mp2_kj_mol"] = mp2_binding(symbols, split, positions, basis)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="forcefields/nacl_gfn2_water113_hardness.pff", help="polarff model")
    parser.add_argument("--basis", default="aug-cc-pvtz", help="MP2 basis set (default aug-cc-pvtz)")
    parser.add_argument("--dimers", nargs="+", default=list(DIMERS), choices=DIMERS)
    parser.add_argument("--no-qm", action="store_true", help="model only")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--shell", metavar="RUN", help="also bind Na⁺ and Cl⁻ to their first shells cut from "
                        "frames of this finished polarff run (MP2 with --shell-basis)")
    parser.add_argument("--shell-frames", type=int, nargs="+", default=[100], help="frame indices (default 100)")
    parser.add_argument("--shell-basis", default="aug-cc-pvdz", help="MP2 basis of the shells")
    args = parser.parse_args(argv)
    if args.shell:
        print(f"first shells from {args.shell}; MP2/{args.shell_basis} with counterpoise (kJ/mol)")
        for ion in ("Na", "Cl"):
            for row in shell_binding(args.model, args.shell, ion, args.shell_frames, args.shell_basis,
                                     not args.no_qm):
                qm = f"  MP2 {row['e_mp2_kj_mol']:8.1f}" if "e_mp2_kj_mol" in row else ""
                print(f"  {ion} + {row['n_waters']} H2O, frame {row['frame']}: model {row['e_model_kj_mol']:8.1f}{qm}")
    results = [analyse(args.model, kind, args.basis, not args.no_qm) for kind in args.dimers]
    label = {"water": "(H2O)2, O–O", "Na": "Na+·H2O, Na–O", "Cl": "Cl−·H2O, Cl–O"}
    print(f"model {args.model}; MP2/{args.basis} with counterpoise, at the model's orientation")
    print(f"{'dimer':18s} {'model: d (Å)':>12s} {'E (kJ/mol)':>11s} {'MP2 at model d':>15s} "
          f"{'MP2 min: d (Å)':>15s} {'E (kJ/mol)':>11s}")
    for r in results:
        qm = (f"{r['e_mp2_at_model_kj_mol']:15.1f} {r['distance_mp2_A']:15.3f} {r['e_mp2_kj_mol']:11.1f}"
              if "e_mp2_kj_mol" in r else "")
        print(f"{label[r['dimer']]:18s} {r['distance_model_A']:12.3f} {r['e_model_kj_mol']:11.1f} {qm}")
    if args.json:
        from polarff.fileio import write_json

        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
