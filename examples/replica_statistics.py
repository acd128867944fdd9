"""How honest are the error bars of one small-box run, and does the small box bias the transport?

``polarff benchmark`` measures the polarff model's transport in a box of 64 waters and one NaCl pair
(0.87 mol/kg), because the model costs ~45 ms per step there on one core. Two questions decide what such
runs can claim, and both are answered here with the fixed-charge baseline (TIP3P + Joung–Cheatham,
``fixed_charge_baseline``; under 1 ms per step in that box), which is cheap enough for many replicas:

1. **Are the block errors honest?** Many independent replicas of the small box (each its own box from
   :func:`polarff.simulate.write_equilibrated_box` and its own velocities), each analysed exactly as the
   benchmark analyses its runs (:func:`polarff.benchmark.analyze_transport`, 5 blocks). The replicas' standard
   deviation is the true error of one run; the mean block error is what one run reports. Their ratio says
   how far a single run's error bar can be trusted, and the standard deviation gives the sampling plan:
   replicas needed for a standard error of 10 % of the mean, (s / 0.1 x̄)².
2. **Does the small box bias the estimate?** A few replicas of a box eight times larger at the same
   molality (512 waters, 8 pairs), with the same cutoff, thermostat, time step and analysis. D is compared
   after the Yeh–Hummer correction with the baseline's own viscosity (TIP3P: 0.321 mPa·s, M. A. González and
   J. L. F. Abascal, J. Chem. Phys. 132, 096101 (2010)); the Einstein–Helfand Λ has no hydrodynamic finite-size
   term to first order and is compared as it is.

All runs are NVT with OpenMM's NoseHooverIntegrator (collision frequency 1/ps, as ``polarff benchmark``), 2 fs
steps, rigid water. Every run is resumable and skipped once finished, so a rerun only prints the tables.

Example (docs/replica-statistics.md; about 20 minutes on one core)::

    OMP_NUM_THREADS=1 python examples/replica_statistics.py --out build/replicas --replicas 32 \\
        --large-replicas 3 --length-ps 100
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from polarff.errors import ConfigError

#: Quantities compared: species label of :func:`polarff.benchmark.analyze_transport` (or 'Lambda'), name.
QUANTITIES = {"H2O": "D(H₂O)", "Na+": "D(Na⁺)", "Cl-": "D(Cl⁻)", "Lambda": "Λ EH (S cm²/mol)"}

#: Shear viscosity of TIP3P at 298 K, mPa·s (González and Abascal, J. Chem. Phys. 132, 096101 (2010)).
TIP3P_VISCOSITY_MPA_S = 0.321


def run_config(box_pdb: str, seed: int, args: argparse.Namespace):
    """:class:`polarff.simulate.SimulationConfig` of one baseline replica (Nosé–Hoover, 1/ps)."""
    from polarff.simulate import SimulationConfig

    return SimulationConfig(topology=box_pdb, forcefield="fixed_charge_baseline", ensemble="nvt",
                            thermostat="nose-hoover", collision_frequency_per_ps=1.0, temperature_k=298.15,
                            timestep_fs=2.0, length_ps=args.length_ps, equilibration_ps=2.0, minimize=False,
                            cutoff_nm=args.cutoff, report_interval_fs=args.report_interval_fs,
                            energy_interval_fs=1000.0, checkpoint_interval_ps=20.0, threads=args.threads,
                            seed=seed)


def measure(folder: Path, n_blocks: int, viscosity: float) -> dict:
    """Yeh–Hummer corrected D (1e-9 m²/s) and Einstein–Helfand Λ (S cm²/mol) of one finished run, each as
    [value, block error], with the run's mean kinetic temperature (K)."""
    from polarff.benchmark import analyze_transport
    from polarff.simulate import load_trajectory

    summary, _ = analyze_transport(load_trajectory(str(folder)), n_blocks=n_blocks, viscosity=viscosity)
    result = {s: [summary["diffusion"][s]["corrected"], summary["diffusion"][s]["error"]]
              for s in QUANTITIES if s in summary["diffusion"]}
    lam = summary["conductivity"]["molar_conductivity_formal"]
    result["Lambda"] = [lam["value"], lam["error"]]
    result["temperature_k"] = summary["kinetic_temperature_k"]
    result["box_nm"] = summary["box_nm"]
    return result


def replica(out: Path, name: str, waters: int, pairs: int, seed: int, args: argparse.Namespace) -> dict:
    """Run (or read) one replica: its own equilibrated box and run, measured; cached in ``measured.json``."""
    from polarff.simulate import RUN_RECORD, TRAJECTORY_NPZ, run_simulation, write_equilibrated_box

    folder = out / f"{name}-s{seed}"
    cached = folder / "measured.json"
    if cached.exists():
        return json.loads(cached.read_text())
    box = folder / "box.pdb"
    if not box.exists():
        write_equilibrated_box(box, "NaCl", pairs, waters, seed, threads=args.threads)
    run = folder / "run"
    if not ((run / TRAJECTORY_NPZ).exists() and (run / RUN_RECORD).exists()):
        print(f"[replicas] {name} seed {seed}: {waters} H2O + {pairs} NaCl, {args.length_ps:g} ps",
              file=sys.stderr, flush=True)
        run_simulation(run_config(str(box), seed, args), run)
    result = measure(run, args.blocks, args.viscosity)
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(cached)
    return result


def statistics(results: list[dict], key: str) -> dict:
    """Mean, standard error from the scatter, sample standard deviation, mean block error and replicas for a
    standard error of 10 % of the mean, of one quantity over replicas."""
    values = np.array([r[key][0] for r in results], dtype=float)
    blocks = np.array([r[key][1] for r in results], dtype=float)
    n = len(values)
    std = float(values.std(ddof=1)) if n > 1 else float("nan")
    mean = float(values.mean())
    needed = math.ceil((std / (0.1 * abs(mean))) ** 2) if n > 1 and mean != 0 else None
    return {"n": n, "mean": mean, "standard_error": std / math.sqrt(n) if n > 1 else float("nan"), "std": std,
            "mean_block_error": float(blocks.mean()), "replicas_for_10_percent": needed}


def table(small: list[dict], large: list[dict], args: argparse.Namespace) -> str:
    """Markdown table: per quantity, the small-box replicas' statistics and the large box's mean."""
    head = ["quantity", f"small box: mean ± SE (n = {len(small)})", "replica std", "mean block error",
            "std / block error", f"{args.length_ps:g} ps replicas for ± 10 %",
            f"large box: mean ± SE (n = {len(large)})", "small / large"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, name in QUANTITIES.items():
        s = statistics(small, key)
        cells = [name, f"{s['mean']:.3f} ± {s['standard_error']:.3f}", f"{s['std']:.3f}",
                 f"{s['mean_block_error']:.3f}", f"{s['std'] / s['mean_block_error']:.2f}",
                 str(s["replicas_for_10_percent"])]
        if large:
            g = statistics(large, key)
            error = g["standard_error"] if len(large) > 1 else g["mean_block_error"]
            r = s["mean"] / g["mean"]
            r_error = abs(r) * math.hypot(s["standard_error"] / s["mean"], error / g["mean"])
            cells += [f"{g['mean']:.3f} ± {error:.3f}", f"{r:.3f} ± {r_error:.3f}"]
        else:
            cells += ["n/a", "n/a"]
        lines.append("| " + " | ".join(cells) + " |")
    temperatures = [r["temperature_k"] for r in small]
    note = (f"\nD in 1e-9 m²/s, Yeh–Hummer corrected with η = {args.viscosity:g} mPa·s; errors of one run from "
            f"{args.blocks} blocks; SE = std / √n. Small box {small[0]['box_nm']:.3f} nm"
            + (f", large box {large[0]['box_nm']:.3f} nm" if large else "")
            + f"; replica mean kinetic temperatures {min(temperatures):.1f}–{max(temperatures):.1f} K.")
    return "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="build/replicas", help="output folder (one subfolder per replica)")
    p.add_argument("--replicas", type=int, default=32, help="small-box replicas (default 32)")
    p.add_argument("--waters", type=int, default=64, help="waters in the small box (default 64)")
    p.add_argument("--pairs", type=int, default=1, help="NaCl pairs in the small box (default 1)")
    p.add_argument("--large-replicas", type=int, default=3, help="large-box replicas (default 3; 0 for none)")
    p.add_argument("--scale", type=int, default=8, help="large box = this many small boxes' contents (default 8)")
    p.add_argument("--length-ps", type=float, default=100.0, help="production per replica (ps)")
    p.add_argument("--report-interval-fs", type=float, default=50.0, help="time between frames (fs)")
    p.add_argument("--cutoff", type=float, default=0.612,
                   help="nonbonded cutoff (nm) of both boxes (default 0.612, the benchmark's in the small box)")
    p.add_argument("--viscosity", type=float, default=TIP3P_VISCOSITY_MPA_S,
                   help="shear viscosity for the Yeh–Hummer correction, mPa·s (default TIP3P's 0.321)")
    p.add_argument("--blocks", type=int, default=5, help="blocks for the error bar of one run")
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    p.add_argument("--seed", type=int, default=100, help="seed of the first replica (others count up)")
    args = p.parse_args(argv)
    if args.replicas < 2:
        raise ConfigError(f"--replicas: expected at least 2 small-box replicas (found {args.replicas})")
    if args.large_replicas < 0 or args.scale < 2:
        raise ConfigError(f"--large-replicas >= 0 and --scale >= 2 expected (found {args.large_replicas}, "
                          f"{args.scale})")
    out = Path(args.out)
    small = [replica(out, "small", args.waters, args.pairs, args.seed + k, args) for k in range(args.replicas)]
    large = [replica(out, "large", args.scale * args.waters, args.scale * args.pairs, args.seed + k, args)
             for k in range(args.large_replicas)]
    print(f"Fixed-charge baseline (TIP3P + Joung–Cheatham), {args.waters} H2O + {args.pairs} NaCl per small box, "
          f"Nosé–Hoover 1/ps, {args.length_ps:g} ps per replica, cutoff {args.cutoff:g} nm")
    print(table(small, large, args))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
