"""Re-balance the Lennard-Jones radii of the fixed terms for a polarff model against structural data.

polarff replaces the TIP3P / Joung–Cheatham charges by environment-dependent charges plus Thole
induction, which bind molecules more strongly than the fixed charges those Lennard-Jones radii were
fitted with. This script scans the radius (sigma, epsilon kept) of one atom type at a time with short
polarff MD and measures the quantities the radius is fitted to:

* water O: density of pure water at 298.15 K and 1 bar (NPT) -> 0.997 g/cm^3, with the O–O first
  peak of g(r) reported beside it (experiment 2.80 A, X-ray: Skinner et al., J. Chem. Phys. 138,
  074506 (2013));
* Na+ and Cl-: position of the first ion–water-oxygen peak of g(r) at 0.87 mol/kg (NVT) -> Na–O
  2.38 A (X-ray diffraction 2.384 +- 0.003 A and EXAFS; Galib et al., J. Chem. Phys. 146, 084504 (2017))
  and Cl–O 3.16 A (diffraction of NaCl(aq); Ohtaki & Radnai, Chem. Rev. 93, 1157 (1993)).

Transport (diffusion, conductivity) is not fitted: it stays a prediction (``polarff benchmark``).
Every point is written to ``OUT/scan.json`` when it finishes; rerunning resumes.

Example (the values behind docs/benchmark-nacl.md, ``forcefields/polarff_nacl_gfn2_fixed_terms.xml``)::

    OMP_NUM_THREADS=1 python examples/rebalance_lj.py --out build/rebalance --stage water \\
        --sigma-o 3.15075 3.18 3.21 3.25
    OMP_NUM_THREADS=1 python examples/rebalance_lj.py --out build/rebalance --stage ions --paired \\
        --sigma-o 3.20 --sigma-na 2.43928 2.40 2.36 --sigma-cl 4.55 4.80 5.05
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from polarff.analysis.structure import (EXPERIMENT_PEAK_A, density_g_cm3, energy_per_water, first_peak,
                                       radial_distribution)
from polarff.build import forcefield_path
from polarff.fileio import write_json, write_text

#: Reference values the radii are fitted to.
TARGET_DENSITY_G_CM3 = 0.997
TARGET_PEAK_A = EXPERIMENT_PEAK_A
#: Atom types of polarff_fixed_terms.xml by element.
ATOM_TYPES = {"O": "pff-OW", "Na": "pff-Na", "Cl": "pff-Cl"}


def _sigma_pattern(element: str) -> re.Pattern:
    """The NonbondedForce ``<Atom type=... sigma="...">`` of one element's atom type (sigma in group 2, nm)."""
    if element not in ATOM_TYPES:
        raise ValueError(f"no scanned atom type for {element!r} (expected one of {sorted(ATOM_TYPES)})")
    return re.compile(r'(<Atom type="%s" charge="0.0" sigma=")([0-9.eE+-]+)(")' % ATOM_TYPES[element])


def fixed_terms_sigma(text: str, element: str) -> float:
    """The sigma (Å) of one element's atom type in the text of a fixed-terms XML (ValueError unless exactly one)."""
    found = _sigma_pattern(element).findall(text)
    if len(found) != 1:
        raise ValueError(f"expected one NonbondedForce <Atom type=\"{ATOM_TYPES[element]}\" ...>, found {len(found)}")
    return 10.0 * float(found[0][1])


def fixed_terms_with_sigmas(sigmas_angstrom: dict[str, float], source: str | None = None) -> str:
    """Text of a fixed-terms XML (default polarff_fixed_terms.xml) with the sigma of some atom types replaced
    (values in Å)."""
    source = source or forcefield_path("polarff_fixed_terms")
    text = Path(source).read_text()
    for element, sigma in sigmas_angstrom.items():
        pattern = _sigma_pattern(element)
        text, count = pattern.subn(lambda m: m.group(1) + f"{sigma / 10.0:.6g}" + m.group(3), text)
        if count != 1:
            raise ValueError(f"{source}: expected one NonbondedForce <Atom type=\"{ATOM_TYPES[element]}\" ...>, "
                             f"found {count}")
    return text


def rdf_first_peak(positions: np.ndarray, boxes: np.ndarray, symbols: np.ndarray, a: str, b: str,
                   r_max_nm: float = 0.6, bin_nm: float = 0.002) -> tuple[float, float]:
    """Position (Å) and height of the first g(r) peak between species a and b (frames in nm)."""
    return first_peak(*radial_distribution(positions, boxes, symbols, a, b, r_max_nm, bin_nm))


def run_point(out: Path, name: str, box_pdb: str, model: str, sigmas: dict[str, float], ensemble: str,
              length_ps: float, equilibration_ps: float, seed: int, cutoff_nm: float) -> dict:
    """One short polarff MD with modified radii; returns the measured structure (and density)."""
    from polarff.simulate import SimulationConfig, load_trajectory, run_simulation

    xml = out / "xml" / f"{name}.xml"
    if not xml.exists():
        write_text(xml, fixed_terms_with_sigmas(sigmas))
    config = SimulationConfig(topology=box_pdb, model=model, fixed_terms=str(xml), ensemble=ensemble,
                              cutoff_nm=cutoff_nm, timestep_fs=2.0,
                              length_ps=length_ps, equilibration_ps=equilibration_ps, minimize=True,
                              minimize_iterations=20, report_interval_fs=20.0, energy_interval_fs=100.0,
                              threads=1, seed=seed, output=str(out / "runs" / name))
    run_simulation(config, progress=True)
    traj = load_trajectory(str(out / "runs" / name))
    symbols = np.asarray(traj["symbols"])
    result = {"name": name, "sigmas_A": sigmas, "ensemble": ensemble, "length_ps": length_ps}
    for a, b in TARGET_PEAK_A:
        if (symbols == a).any() and (symbols == b).any():
            r, g = rdf_first_peak(traj["positions"], traj["box"], symbols, a, b)
            result[f"peak_{a}-{b}_A"] = round(r, 3)
            result[f"g_{a}-{b}"] = round(g, 2)
    rho, err = density_g_cm3(np.asarray(traj["masses"]), traj["box"])
    # minus the vaporization energy for pure water (experiment: WATER_COHESIVE_ENERGY_KJ_MOL)
    result["potential_per_water_kj_mol"] = round(energy_per_water(traj["potential_energy"], symbols), 2)
    result["density_g_cm3"] = round(rho, 4)
    result["density_error"] = round(err, 4)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="forcefields/nacl_gfn2.pff")
    p.add_argument("--out", default="build/rebalance")
    p.add_argument("--stage", choices=["water", "ions"], required=True)
    p.add_argument("--sigma-o", type=float, nargs="+", default=[3.15075], help="water O sigma values, Å")
    p.add_argument("--sigma-na", type=float, nargs="+", default=[2.43928], help="Na+ sigma values, Å")
    p.add_argument("--sigma-cl", type=float, nargs="+", default=[4.47766], help="Cl- sigma values, Å")
    p.add_argument("--paired", action="store_true",
                   help="ions stage: pair the k-th Na sigma with the k-th Cl sigma instead of a full grid")
    p.add_argument("--waters", type=int, default=64, help="waters of the salt box (0.87 mol/kg with 1 pair)")
    p.add_argument("--pure-waters", type=int, default=96,
                   help="waters of the NPT pure-water box (large enough to stay above twice the cutoff)")
    p.add_argument("--cutoff", type=float, default=0.6,
                   help="LJ, real-space Ewald and induction cutoff, nm (the benchmark's 0.612 for 64 waters)")
    p.add_argument("--pairs", type=int, default=1)
    p.add_argument("--length-ps", type=float, default=8.0)
    p.add_argument("--equilibration-ps", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)

    from polarff.simulate import write_equilibrated_box

    out = Path(args.out)
    scan_path = out / "scan.json"
    results = json.loads(scan_path.read_text()) if scan_path.exists() else {}
    if args.stage == "water":
        box = out / "boxes" / "water.pdb"
        if not box.exists():
            write_equilibrated_box(box, "NaCl", 0, args.pure_waters, args.seed, threads=1)
        points = [(f"water_O{s:.4f}", {"O": s}, "npt") for s in args.sigma_o]
    else:
        box = out / "boxes" / "nacl.pdb"
        if not box.exists():
            write_equilibrated_box(box, "NaCl", args.pairs, args.waters, args.seed, threads=1)
        if args.paired:  # Na and Cl are far apart in the box: vary both in one run, k-th with k-th
            if len(args.sigma_na) != len(args.sigma_cl):
                p.error("--paired needs as many --sigma-na as --sigma-cl values")
            combos = [(o, na, cl) for o in args.sigma_o for na, cl in zip(args.sigma_na, args.sigma_cl)]
        else:
            combos = [(o, na, cl) for o in args.sigma_o for na in args.sigma_na for cl in args.sigma_cl]
        points = [(f"nacl_O{o:.4f}_Na{na:.4f}_Cl{cl:.4f}", {"O": o, "Na": na, "Cl": cl}, "nvt")
                  for o, na, cl in combos]
    for name, sigmas, ensemble in points:
        if name in results:
            continue
        results[name] = run_point(out, name, str(box), args.model, sigmas, ensemble, args.length_ps,
                                  args.equilibration_ps, args.seed, args.cutoff)
        write_json(scan_path, results)
        print(json.dumps(results[name]))
    print("\n| run | sigma (Å) | density (g/cm³) | U per water (kJ/mol) | O–O peak (Å) | Na–O peak (Å) | Cl–O peak (Å) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        sig = ", ".join(f"{k} {v}" for k, v in r["sigmas_A"].items())
        print(f"| {name} | {sig} | {r['density_g_cm3']} ± {r['density_error']} | "
              f"{r.get('potential_per_water_kj_mol', '—')} | {r.get('peak_O-O_A', '—')} | "
              f"{r.get('peak_Na-O_A', '—')} | {r.get('peak_Cl-O_A', '—')} |")
    print(f"targets: density {TARGET_DENSITY_G_CM3}, peaks {TARGET_PEAK_A}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
