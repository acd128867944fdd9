"""Does the Cl⁻ radius set how fast Cl⁻ diffuses? NaCl(aq) runs of a model with σ(Cl) changed, side by side.

For each σ(Cl) the fixed-terms XML the model names is copied with only the Cl⁻ Lennard-Jones radius changed,
and the salt run of ``polarff benchmark`` (64 H₂O + 1 NaCl, 0.87 mol/kg, NVT 298.15 K, 2 fs, frames every
10 fs, the benchmark's box for ``--seed``) is run with it into ``OUT/s<σ>/runs/polarff-nacl``. Runs resume
from their checkpoints, and a finished run is only read. Printed per σ: D (Yeh–Hummer corrected, block
errors) of water and the ions against experiment, Λ with formal charges, the first Cl–O peak (Å), and the
Cl⁻ hydration: water O within 0.38 nm (as in the benchmark report) and H within 0.30 nm (the first minimum
of the Cl–H g(r); neutron diffraction counts 5.8 D around Cl⁻ at 298 K, T. Yamaguchi et al., Chem. Phys.
Lett. 252, 317 (1996)), how far Cl⁻ sits from the centroid of its shell O (0 in an even cage) and how long
water stays in its shell (Impey–Madden–McDonald residence time, ``polarff.analysis.residence``).

Example (docs/chloride.md; a 100 ps point takes about 30 min alone on one core, 60 min with three on 2 cores)::

    OMP_NUM_THREADS=1 python examples/chloride_radius_scan.py --out build/cl --sigma-cl 0.474 --length-ps 100

With ``--write-variant`` it writes a copy of the model with the Cl⁻ polarizability or charge scaled (diagnostic
variants) and/or per-species Thole damping strengths set (``--thole Cl=0.16 --thole-basis "..."``; how
``forcefields/nacl_gfn2_water113_clthole.pff`` was written), to run the same way with ``--model`` and the
shipped radius (0.466 nm).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from polarff.analysis.structure import coordination_number, shell_offset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rebalance_lj import fixed_terms_with_sigmas  # noqa: E402

CL_H_SHELL_NM = 0.30
CL_O_SHELL_NM = 0.38  # first minimum of the Cl–O g(r), as in polarff.benchmark


def xml_with_cl_sigma(source: str, sigma_nm: float) -> str:
    """The text of a fixed-terms XML with the Cl⁻ sigma replaced (ValueError if it has no single pff-Cl atom)."""
    return fixed_terms_with_sigmas({"Cl": 10.0 * sigma_nm}, source)


def hydrogens_near(traj: dict, ion: str = "Cl", cutoff_nm: float = CL_H_SHELL_NM) -> float:
    """Mean number of water H within ``cutoff_nm`` of the (first) ion ``ion`` (minimum image)."""
    symbols = np.asarray(traj["symbols"]).astype(str)
    return coordination_number(traj["positions"], traj["box"], np.flatnonzero(symbols == ion)[:1],
                               np.flatnonzero(symbols == "H"), cutoff_nm)


def cage_offset_a(traj: dict, ion: str = "Cl", cutoff_nm: float = CL_O_SHELL_NM) -> float:
    """Mean distance (Å) of the ion from the centroid of the water O within ``cutoff_nm``: how far it sits to
    one side of its cage (frames with an empty shell left out)."""
    symbols = np.asarray(traj["symbols"]).astype(str)
    offsets = shell_offset(traj["positions"], traj["box"], int(np.flatnonzero(symbols == ion)[0]),
                           np.flatnonzero(symbols == "O"), cutoff_nm)
    return float(10.0 * np.nanmean(offsets))


def shell_residence_ps(traj: dict, ion: str = "Cl", cutoff_nm: float = CL_O_SHELL_NM, every_ps: float = 0.1,
                       max_lag_ps: float = 30.0) -> float:
    """Residence time (ps) of water in the ion's first shell (Impey–Madden–McDonald, t* = 2 ps; frames
    thinned to one per ``every_ps``)."""
    from polarff.analysis.residence import residence_time, shell_correlation, shell_membership

    times = np.asarray(traj["time"])
    stride = max(1, int(round(every_ps / (times[1] - times[0]))))
    symbols = np.asarray(traj["symbols"]).astype(str)
    inside = shell_membership(traj["positions"][::stride], traj["box"][::stride],
                              int(np.flatnonzero(symbols == ion)[0]), np.flatnonzero(symbols == "O"), cutoff_nm)
    return residence_time(*shell_correlation(inside, float(times[stride] - times[0]), max_lag_ps))


def write_cl_variant(model: str, output: str, polarizability_factor: float = 1.0, charge_factor: float = 1.0,
                     thole: dict[str, float] | None = None, basis: str = "") -> None:
    """Save a copy of ``model`` with the Cl⁻ class values (and bin edges) of α and/or q multiplied and the given
    per-species Thole strengths (``{species: a}``, replacing the model's; ``basis`` says where they come from).
    The charges stay neutral through the model's per-frame shift."""
    from polarff.artifact import load_model
    from polarff.errors import ConfigError

    variant = load_model(model)
    if thole:
        unknown = sorted(set(thole) - set(variant.species))
        if unknown or not all(a > 0 for a in thole.values()):
            raise ConfigError(f"--thole: expected species of the model {variant.species} with values > 0, "
                              f"found {thole}")
        variant.thole = {"a": dict(thole), "basis": basis or "set by hand (examples/chloride_radius_scan.py)"}
    for target, factor in (("polarizabilities", polarizability_factor), ("charges", charge_factor)):
        binning = variant.bins[target]
        row = list(binning.species).index("Cl")
        binning.centres[row] *= factor
        binning.edges[row] *= factor
    variant.card["variant"] = (f"{model} with the Cl⁻ polarizability x{polarizability_factor:g} and charge "
                               f"x{charge_factor:g}, Thole a {thole or 'unchanged'} (examples/chloride_radius_scan.py)")
    variant.save(output)


def run_point(model: str, out: Path, sigma_nm: float, length_ps: float, seed: int) -> Path:
    """Run (or resume, or just find) the salt run for one σ(Cl); returns its run folder."""
    from polarff.artifact import load_model
    from polarff.benchmark import BenchmarkConfig, _write_yaml, plan_runs
    from polarff.fileio import write_text
    from polarff.openmm.system import model_fixed_terms
    from polarff.simulate import run_simulation

    folder = out / f"s{sigma_nm:g}"
    folder.mkdir(parents=True, exist_ok=True)
    xml = folder / f"fixed_terms_cl{sigma_nm:g}.xml"
    write_text(xml, xml_with_cl_sigma(model_fixed_terms(load_model(model))[0], sigma_nm))
    cfg = BenchmarkConfig(model=model, out=str(folder), n_waters=64, n_pairs=1, n_waters_pure=0,
                          length_ps=length_ps, water_length_ps=0, equilibration_ps=2, timestep_fs=2,
                          report_interval_fs=10, baselines=[], threads=1, seed=seed, n_blocks=5,
                          minimize_iterations=20)
    run = plan_runs(cfg)["polarff-nacl"]
    run.fixed_terms = str(xml)
    _write_yaml(Path(run.output) / "config.yaml", run)
    run_simulation(run, Path(run.output), progress=True)
    return Path(run.output)


def summary(run_dir: Path) -> dict:
    """Transport and Cl⁻ shell numbers of one finished salt run."""
    from polarff.benchmark import first_peaks, ion_structure, transport_summary
    from polarff.simulate import load_trajectory

    traj = load_trajectory(str(run_dir))
    transport = transport_summary(traj)
    return {"transport": transport, "length_ps": transport["length_ps"],
            "diffusion": {k: (v["corrected"], v["error"], v["experiment"]["value"])
                          for k, v in transport["diffusion"].items()},
            "lambda_formal": transport["conductivity"]["molar_conductivity_formal"],
            "cl_o_peak_A": first_peaks(traj)["Cl-O"]["position_A"],
            "cl_o_coordination": ion_structure(traj)["Cl"]["coordination"],
            "cl_h_coordination": hydrogens_near(traj), "cl_cage_offset_A": cage_offset_a(traj),
            "cl_residence_ps": shell_residence_ps(traj)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="forcefields/nacl_gfn2_water113_hardness.pff")
    parser.add_argument("--out", default="build/cl")
    parser.add_argument("--sigma-cl", type=float, nargs="+", help="Cl⁻ sigma values (nm)")
    parser.add_argument("--write-variant", metavar="OUT.pff", help="only write a copy of --model with the Cl⁻ "
                        "class values scaled by --cl-polarizability-factor / --cl-charge-factor, then stop")
    parser.add_argument("--cl-polarizability-factor", type=float, default=1.0)
    parser.add_argument("--cl-charge-factor", type=float, default=1.0)
    parser.add_argument("--thole", nargs="+", metavar="SPECIES=A", default=[],
                        help="with --write-variant: per-species Thole damping strengths (default 0.39 for all)")
    parser.add_argument("--thole-basis", default="", help="with --thole: where the values come from")
    parser.add_argument("--length-ps", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=7, help="benchmark box and thermostat seed")
    parser.add_argument("--read", nargs="+", metavar="RUN", help="only read these finished salt runs (replicas "
                        "of one setting): print a row for each and their combination")
    args = parser.parse_args(argv)
    if args.read:
        print_replicas([Path(r) for r in args.read])
        return 0
    if args.write_variant:
        thole = {}
        for item in args.thole:
            name, _, value = item.partition("=")
            try:
                thole[name] = float(value)
            except ValueError:
                parser.error(f"--thole: expected SPECIES=A (e.g. Cl=0.12), found {item!r}")
        write_cl_variant(args.model, args.write_variant, args.cl_polarizability_factor, args.cl_charge_factor,
                         thole, args.thole_basis)
        print(f"wrote {args.write_variant}")
        return 0
    if not args.sigma_cl:
        parser.error("--sigma-cl is required (or --write-variant)")

    import torch  # noqa: F401  (before openmm, so the openmm-torch plugin loads)

    from polarff.simulate import load_openmm

    load_openmm()
    print(HEADER.replace("run", "σ(Cl) nm"))
    for sigma in args.sigma_cl:
        print(row(f"{sigma:g}", summary(run_point(args.model, Path(args.out), sigma, args.length_ps, args.seed))))
    return 0


HEADER = ("run | ps | D(H2O) | D(Na+) | D(Cl-) (1e-9 m²/s, vs exp) | Λ formal | Cl–O peak Å | O, H near Cl "
          "| Cl off cage centre Å | Cl shell residence ps")


def row(label: str, s: dict) -> str:
    """One markdown row of :func:`summary` (or of the combined replicas)."""
    d = " | ".join(f"{v:.2f} ± {e:.2f} ({100 * (v / x - 1):+.0f} %)" for v, e, x in s["diffusion"].values())
    lam = s["lambda_formal"]
    return (f"{label} | {s['length_ps']:.0f} | {d} | {lam['value']:.1f} ± {lam['error']:.1f} | "
            f"{s['cl_o_peak_A']:.2f} | {s['cl_o_coordination']:.2f}, {s['cl_h_coordination']:.2f} | "
            f"{s['cl_cage_offset_A']:.2f} | {s['cl_residence_ps']:.1f}")


def print_replicas(runs: list[Path]) -> None:
    """A row per finished run and one for their combination (:func:`polarff.benchmark.combine_replicas`:
    equal weights, error √(Σ errorᵢ²)/n; structure numbers averaged)."""
    from polarff.benchmark import combine_replicas

    rows = [summary(r) for r in runs]
    print(HEADER)
    for run, s in zip(runs, rows):
        print(row(str(run), s))
    if len(rows) > 1:
        both = combine_replicas([s["transport"] for s in rows])
        mean = {k: float(np.mean([s[k] for s in rows]))
                for k in ("cl_o_peak_A", "cl_o_coordination", "cl_h_coordination", "cl_cage_offset_A",
                          "cl_residence_ps")}
        mean.update(length_ps=both["length_ps"], lambda_formal=both["conductivity"]["molar_conductivity_formal"],
                    diffusion={k: (v["value"], v["error"], v["experiment"]["value"])
                               for k, v in both["diffusion"].items()})
        print(row(f"combined ({len(rows)})", mean))


if __name__ == "__main__":
    raise SystemExit(main())
