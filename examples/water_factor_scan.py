"""Scan the hand-set water charge factor of a polarff model with its electronegativity term in place.

For each water factor F this script builds a model and measures its pure water, as in
docs/electronegativity.md ("The water factor set again, with the hardness term"):

1. ``polarff calibrate-charges --water-factor F`` on a copy of the shipped B3LYP calibration (the DFT entries
   are reused; the ion factors stay the fitted ones);
2. ``polarff fit`` with those label scales (``base.pff``);
3. ``polarff fit-electronegativity`` on finished runs (``--chi-runs``; positions only, the charges are the new
   model's), with ``--tie O H --hardness O H`` by default (``model.pff``);
4. the water O radius for the density of water at 1 bar: one short NPT run at a guessed σ_O
   (``examples/rebalance_lj.py``), moved by the density error over a known slope dρ/dσ_O and rounded to
   0.005 Å;
5. an NVT run of 64 waters at 0.997 g/cm³ (the box of ``polarff benchmark``) with that radius, from which
   D(H₂O) (Yeh–Hummer corrected), the potential energy per water and the first O–O peak are measured.

Every step is skipped when its output exists, so a rerun resumes (and a finished scan only prints its table).
Pure-water D(H₂O) is what F is then set from: ln D is interpolated to experiment (2.30e-9 m²/s)
between the two factors on either side of it.

With ``--model M --sigma-o S`` it builds nothing and measures model M's pure water (steps 4 and 5) at σ_O = S.

Example (the scan behind forcefields/nacl_gfn2_water113_hardness.pff; each point about 18 min on one core)::

    OMP_NUM_THREADS=1 python examples/water_factor_scan.py --out build/wf --point 1.12:3.24 --point 1.14:3.25 \\
        --chi-runs build/benchmark-water111-hardness/runs/polarff-nacl \\
                   build/benchmark-water111-hardness/runs/polarff-water
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np

from polarff.analysis.experiment import D_WATER_298K

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rebalance_lj import TARGET_DENSITY_G_CM3, fixed_terms_with_sigmas, run_point  # noqa: E402

#: Experimental self-diffusion coefficient of water at 298 K, 1e-9 m²/s (its source: D_WATER_298K.source).
D_WATER_EXPERIMENT = D_WATER_298K.value
#: dρ/dσ_O (g/cm³ per Å) of the water-111 model's NPT scan (1.047 at 3.25 Å, 0.941 at 3.29 Å).
DEFAULT_DENSITY_SLOPE = -2.65


def parse_point(text: str) -> tuple[float, float]:
    """``"F:SIGMA"`` -> (water factor, guessed σ_O in Å)."""
    try:
        factor, sigma = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--point expects FACTOR:SIGMA_O, e.g. 1.13:3.24 (found {text!r})") from None
    return factor, sigma


def build_model(folder: Path, factor: float, chi_runs: list[str], tie: list[str], hardness: list[str],
                epochs: int) -> Path:
    """Steps 1–3: calibration, network and electronegativity term for one water factor; returns model.pff."""
    from polarff.cli import main as polarff

    calibration, base, model = folder / "cal.json", folder / "base.pff", folder / "model.pff"
    if not model.exists():
        if not base.exists():
            if not calibration.exists():
                shutil.copy(files("polarff") / "data" / "charge_calibration_b3lyp.json", calibration)
            data = str(files("polarff") / "data" / "nacl_aq.xyz")
            _check(polarff(["calibrate-charges", data, "-o", str(calibration), "--water-factor", f"{factor:g}"]))
            _check(polarff(["fit", "-o", str(base), "--epochs", str(epochs), "--seed", "0",
                            "--charge-calibration", str(calibration)]))
        _check(polarff(["fit-electronegativity", str(base), *chi_runs, "-o", str(model), "--frames", "40",
                        "--tie", *tie, "--hardness", *hardness]))
    return model


def _check(code: int) -> None:
    if code:
        raise SystemExit(code)


def density_radius(folder: Path, model: Path, sigma_guess: float, slope: float) -> tuple[dict, float]:
    """Step 4: the NPT point at the guessed σ_O and the radius that gives 0.997 g/cm³ (Å)."""
    from polarff.fileio import write_json
    from polarff.simulate import write_equilibrated_box

    out = folder / "npt"
    scan_path = out / "scan.json"
    scan = json.loads(scan_path.read_text()) if scan_path.exists() else {}
    name = f"water_O{sigma_guess:.4f}"
    if name not in scan:
        box = out / "boxes" / "water.pdb"
        if not box.exists():
            write_equilibrated_box(box, "NaCl", 0, 96, 7, threads=1)
        scan[name] = run_point(out, name, str(box), str(model), {"O": sigma_guess}, "npt", 8.0, 2.0, 7, 0.6)
        write_json(scan_path, scan)
    point = scan[name]
    sigma = sigma_guess + (TARGET_DENSITY_G_CM3 - point["density_g_cm3"]) / slope
    return point, round(sigma / 0.005) * 0.005


def water_run(folder: Path, model: Path, sigma_o: float, length_ps: float) -> dict:
    """Step 5: NVT pure water (64 waters, the benchmark's box for seed 7) with σ_O; returns its measurements."""
    from polarff.analysis.structure import energy_per_water
    from polarff.benchmark import BenchmarkConfig, _write_yaml, first_peaks, plan_runs, transport_summary
    from polarff.fileio import write_text
    from polarff.simulate import load_openmm, load_trajectory, run_simulation

    xml = folder / f"ft_O{sigma_o:g}.xml"
    if not xml.exists():  # the Cl- radius of the water-111 fixed terms; pure water does not use it
        write_text(xml, fixed_terms_with_sigmas({"O": sigma_o, "Cl": 4.66}))
    cfg = BenchmarkConfig(model=str(model), out=str(folder / "bench"), n_waters=64, n_pairs=1, n_waters_pure=64,
                          length_ps=150.0, water_length_ps=length_ps, fixed_terms=str(xml.resolve()),
                          equilibration_ps=2, timestep_fs=2, report_interval_fs=10, baselines=[],
                          scaled_charge=0.75, threads=1, seed=7, n_blocks=5, minimize_iterations=20)
    run = plan_runs(cfg)["polarff-water"]
    if not (Path(run.output) / "trajectory.npz").exists():
        load_openmm()
        _write_yaml(Path(run.output) / "config.yaml", run)
        run_simulation(run, Path(run.output), progress=True)
    traj = load_trajectory(run.output)
    diffusion = transport_summary(traj)["diffusion"]["H2O"]
    return {"D": diffusion["corrected"], "D_error": diffusion["error"], "length_ps": float(traj["time"][-1] - traj["time"][0]),
            "U_per_water": energy_per_water(traj["potential_energy"], np.asarray(traj["symbols"])),
            "peak_OO": first_peaks(traj)["O-O"]["position_A"]}


def water_factor_crossing(points: list[tuple[float, float]]) -> float | None:
    """Water factor where D(H₂O) meets experiment, ln D interpolated linearly between the two neighbouring
    factors on either side of it; None when no pair brackets experiment."""
    points = sorted(points)
    target = np.log(D_WATER_EXPERIMENT)
    for (f0, d0), (f1, d1) in zip(points, points[1:]):
        l0, l1 = np.log(d0), np.log(d1)
        if (l0 - target) * (l1 - target) <= 0 and l0 != l1:
            return float(f0 + (target - l0) * (f1 - f0) / (l1 - l0))
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="build/wf", help="one folder f<F> per water factor below this")
    p.add_argument("--point", type=parse_point, action="append", metavar="F:SIGMA_O",
                   help="water factor and the σ_O (Å) of its NPT density run; repeat for more factors")
    p.add_argument("--chi-runs", nargs="+",
                   help="finished polarff runs whose frames the electronegativity term is fitted on")
    p.add_argument("--model", type=Path, help="instead of building models: measure this one's pure water (steps "
                   "4 and 5, NPT and NVT both at --sigma-o) in --out")
    p.add_argument("--sigma-o", type=float, help="with --model: the water O radius (Å) of its fixed terms")
    p.add_argument("--tie", nargs="+", default=["O", "H"])
    p.add_argument("--hardness", nargs="+", default=["O", "H"])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--density-slope", type=float, default=DEFAULT_DENSITY_SLOPE,
                   help="dρ/dσ_O, g/cm³ per Å, to move σ_O from the NPT point to 0.997 g/cm³")
    p.add_argument("--water-length-ps", type=float, default=40.0)
    args = p.parse_args(argv)
    if args.model is not None:
        if args.sigma_o is None or args.point:
            p.error("--model needs --sigma-o and takes no --point")
        npt, sigma_o = density_radius(Path(args.out), args.model, args.sigma_o, args.density_slope)
        w = water_run(Path(args.out), args.model, args.sigma_o, args.water_length_ps)
        print(f"{args.model}, σ_O {args.sigma_o:g} Å: NPT density {npt['density_g_cm3']:.3f} ± "
              f"{npt['density_error']:.3f} g/cm³ (σ_O for 0.997: {sigma_o:g} Å); NVT at 0.997 g/cm³: U per water "
              f"{w['U_per_water']:.1f} kJ/mol, O–O peak {w['peak_OO']:.2f} Å, D(H₂O) {w['D']:.2f} ± "
              f"{w['D_error']:.2f} ({100 * (w['D'] / D_WATER_EXPERIMENT - 1):+.0f} %, {w['length_ps']:.0f} ps)")
        return 0
    if not args.point or not args.chi_runs:
        p.error("--point and --chi-runs are required (or --model with --sigma-o)")

    rows = []
    for factor, sigma_guess in args.point:
        folder = Path(args.out) / f"f{factor:g}"
        folder.mkdir(parents=True, exist_ok=True)
        model = build_model(folder, factor, args.chi_runs, args.tie, args.hardness, args.epochs)
        npt, sigma_o = density_radius(folder, model, sigma_guess, args.density_slope)
        rows.append((factor, sigma_guess, npt, sigma_o, water_run(folder, model, sigma_o, args.water_length_ps)))
    print("\n| water factor | NPT: σ_O (Å), density (g/cm³) | σ_O used (Å) | U per water (kJ/mol) | O–O peak (Å) "
          "| D(H₂O) corrected (1e-9 m²/s) |")
    print("|---|---|---|---|---|---|")
    for factor, sigma_guess, npt, sigma_o, w in rows:
        print(f"| {factor:g} | {sigma_guess:g}: {npt['density_g_cm3']:.3f} ± {npt['density_error']:.3f} | "
              f"{sigma_o:g} | {w['U_per_water']:.1f} | {w['peak_OO']:.2f} | {w['D']:.2f} ± {w['D_error']:.2f} "
              f"({100 * (w['D'] / D_WATER_EXPERIMENT - 1):+.0f} %, {w['length_ps']:.0f} ps) |")
    crossing = water_factor_crossing([(r[0], r[4]["D"]) for r in rows])
    if crossing is not None:
        print(f"ln D(H₂O) interpolated between the two factors around experiment: {crossing:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
