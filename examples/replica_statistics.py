"""How honest are the error bars of one small-box run, and does the small box bias the transport?

``polarff benchmark`` measures the polarff model's transport in a box of 64 waters and one NaCl pair
(0.87 mol/kg), because the model costs ~45 ms per step there on one core. Two questions decide what such
runs can claim, and both are answered here with the fixed-charge baseline (TIP3P + Joung–Cheatham,
``fixed_charge_baseline``; under 1 ms per step in that box), which is cheap enough for many replicas:

1. **Are the block errors honest?** Many independent replicas of a box (each its own box from
   :func:`polarff.simulate.write_equilibrated_box` and its own velocities), each analysed exactly as the
   benchmark analyses its runs (:func:`polarff.benchmark.analyze_transport`, 5 blocks). The replicas' standard
   deviation is the true error of one run; the mean block error is what one run reports. Their ratio says
   how far a single run's error bar can be trusted, and the standard deviation gives the sampling plan:
   replicas needed for a standard error of 10 % of the mean, (s / 0.1 x̄)².
2. **Does the box size bias the estimate?** Replicas of larger boxes at the same molality (``--box``), with
   the same cutoff, thermostat, time step and analysis. D is compared after the Yeh–Hummer correction with
   the baseline's own viscosity (TIP3P: 0.321 mPa·s, M. A. González and J. L. F. Abascal, J. Chem. Phys. 132,
   096101 (2010)). For the Einstein–Helfand Λ the table also gives the Nernst–Einstein value from the
   periodic-box D, Λ_NE(PBC), their ratio, and Λ_EH × Λ_NE(corrected D) / Λ_NE(PBC D): the conductivity with
   the self-diffusion's Yeh–Hummer factor applied, which is box-size independent if the ion–ion correlations
   (the ratio Λ_EH / Λ_NE(PBC)) are.

All runs are NVT with OpenMM's NoseHooverIntegrator (collision frequency 1/ps, as ``polarff benchmark``), 2 fs
steps, rigid water. Every run is resumable and skipped once finished (its numbers cached in the replica's
``measured.json``), so a rerun only prints the tables.

Example (docs/replica-statistics.md; about 1 minute per replica of the small box and 3–5 of the large one on
one core; runs of one box with other ``--seed`` values can go in parallel processes into the same folder)::

    OMP_NUM_THREADS=1 python examples/replica_statistics.py --out build/replicas --box 64 1 32 --box 512 8 36
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from polarff.analysis import inverse_box_extrapolation
from polarff.errors import ConfigError

#: Quantities of one replica: key in ``measured.json``, name in the tables.
QUANTITIES = {"H2O": "D(H₂O)", "Na+": "D(Na⁺)", "Cl-": "D(Cl⁻)", "Lambda": "Λ EH",
              "Lambda_NE_pbc": "Λ NE (PBC D)", "Lambda_EH_over_NE_pbc": "Λ EH / Λ NE (PBC D)",
              "Lambda_YH": "Λ EH × NE(corrected D) / NE(PBC D)"}

#: Shear viscosity of TIP3P at 298 K, mPa·s (González and Abascal, J. Chem. Phys. 132, 096101 (2010)).
TIP3P_VISCOSITY_MPA_S = 0.321

#: Version of the numbers cached in ``measured.json`` (a cache of another version is measured again).
MEASURED_VERSION = 3


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
    """Numbers of one finished run, each [value, block error] (D in 1e-9 m²/s Yeh–Hummer corrected, Λ in
    S cm²/mol), with its mean kinetic temperature (K) and box edge (nm)."""
    from polarff.benchmark import analyze_transport, yeh_hummer_scaled
    from polarff.simulate import load_trajectory

    summary, _ = analyze_transport(load_trajectory(str(folder)), n_blocks=n_blocks, viscosity=viscosity)
    diffusion, conductivity = summary["diffusion"], summary["conductivity"]
    result: dict = {s: [diffusion[s]["corrected"], diffusion[s]["error"]] for s in ("H2O", "Na+", "Cl-")}
    eh, ne = conductivity["molar_conductivity_formal"], conductivity["molar_conductivity_ne"]
    result["Lambda"] = [eh["value"], eh["error"]]
    result["Lambda_NE_pbc"] = [ne["value"], ne["error"]]
    ratio = eh["value"] / ne["value"]
    result["Lambda_EH_over_NE_pbc"] = [ratio, abs(ratio) * math.hypot(eh["error"] / eh["value"],
                                                                      ne["error"] / ne["value"])]
    scaled = yeh_hummer_scaled(eh["value"], eh["error"], diffusion)
    result["Lambda_YH"] = [scaled["value"], scaled["error"]]
    result.update(temperature_k=summary["kinetic_temperature_k"], box_nm=summary["box_nm"],
                  version=MEASURED_VERSION)
    return result


def replica(out: Path, waters: int, pairs: int, seed: int, args: argparse.Namespace) -> dict:
    """Run (or read) one replica: its own equilibrated box and run, measured; cached in ``measured.json``."""
    from polarff.simulate import RUN_RECORD, TRAJECTORY_NPZ, run_simulation, write_equilibrated_box

    folder = out / f"{waters}w{pairs}p-s{seed}"
    cached = folder / "measured.json"
    if cached.exists():
        result = json.loads(cached.read_text())
        if result.get("version") == MEASURED_VERSION:
            return result
    box = folder / "box.pdb"
    if not box.exists():
        write_equilibrated_box(box, "NaCl", pairs, waters, seed, threads=args.threads)
    run = folder / "run"
    if not ((run / TRAJECTORY_NPZ).exists() and (run / RUN_RECORD).exists()):
        print(f"[replicas] {waters} H2O + {pairs} NaCl, seed {seed}: {args.length_ps:g} ps", file=sys.stderr,
              flush=True)
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


def box_label(results: list[dict], waters: int, pairs: int) -> str:
    return f"{waters} H₂O + {pairs} NaCl ({results[0]['box_nm']:.2f} nm, n = {len(results)})"


def means_table(boxes: dict[tuple[int, int], list[dict]]) -> str:
    """Markdown table: per quantity, mean ± standard error of the replicas of each box (one replica: its
    block error), the ratio of the first box's mean to the last's, and the two extrapolated linearly in 1/L
    to an infinite box (:func:`polarff.analysis.inverse_box_extrapolation`)."""
    (first, last) = (list(boxes)[0], list(boxes)[-1])
    head = ["quantity", *[box_label(r, *key) for key, r in boxes.items()]]
    if len(boxes) > 1:
        head += ["first / last box", "1/L → ∞ (first, last)", "∞ / first box"]
    edges = {box: float(np.mean([r["box_nm"] for r in results])) for box, results in boxes.items()}
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, name in QUANTITIES.items():
        cells = [name]
        estimates = {}
        for box, results in boxes.items():
            st = statistics(results, key)
            estimates[box] = (st["mean"], st["standard_error"] if st["n"] > 1 else st["mean_block_error"])
            cells.append(f"{estimates[box][0]:.3f} ± {estimates[box][1]:.3f}")
        if len(boxes) > 1:
            (a, a_error), (b, b_error) = estimates[first], estimates[last]
            r = a / b
            cells.append(f"{r:.3f} ± {abs(r) * math.hypot(a_error / a, b_error / b):.3f}")
            infinite, infinite_error, gain, gain_error = inverse_box_extrapolation(
                (a, a_error, edges[first]), (b, b_error, edges[last]))
            cells += [f"{infinite:.3f} ± {infinite_error:.3f}", f"{gain:.3f} ± {gain_error:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def honesty_table(boxes: dict[tuple[int, int], list[dict]], length_ps: float) -> str:
    """Markdown table: per box and quantity, the replicas' standard deviation against the mean block error,
    and the replicas a 10 % standard error needs."""
    head = ["box", "quantity", "replica std", "mean block error", "std / block error",
            f"{length_ps:g} ps replicas for ± 10 %"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (waters, pairs), results in boxes.items():
        if len(results) < 2:
            continue
        for key in ("H2O", "Na+", "Cl-", "Lambda"):
            st = statistics(results, key)
            lines.append(f"| {waters} H₂O + {pairs} NaCl | {QUANTITIES[key]} | {st['std']:.3f} | "
                         f"{st['mean_block_error']:.3f} | {st['std'] / st['mean_block_error']:.2f} | "
                         f"{st['replicas_for_10_percent']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="build/replicas", help="output folder (one subfolder per replica)")
    p.add_argument("--box", type=int, nargs=3, action="append", metavar=("WATERS", "PAIRS", "REPLICAS"),
                   help="a box and its number of replicas; repeat for several boxes, the first the benchmark's "
                        "(default: --box 64 1 32 --box 512 8 6)")
    p.add_argument("--length-ps", type=float, default=100.0, help="production per replica (ps)")
    p.add_argument("--report-interval-fs", type=float, default=50.0, help="time between frames (fs)")
    p.add_argument("--cutoff", type=float, default=0.612,
                   help="nonbonded cutoff (nm) of every box (default 0.612, the benchmark's in the 64-water box)")
    p.add_argument("--viscosity", type=float, default=TIP3P_VISCOSITY_MPA_S,
                   help="shear viscosity for the Yeh–Hummer correction, mPa·s (default TIP3P's 0.321)")
    p.add_argument("--blocks", type=int, default=5, help="blocks for the error bar of one run")
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    p.add_argument("--seed", type=int, default=100, help="seed of the first replica of each box (others count up)")
    args = p.parse_args(argv)
    boxes_asked = args.box or [[64, 1, 32], [512, 8, 6]]
    for waters, pairs, replicas in boxes_asked:
        if waters < 1 or pairs < 1 or replicas < 1:
            raise ConfigError(f"--box: expected WATERS, PAIRS and REPLICAS >= 1 (found {waters} {pairs} {replicas})")
    if boxes_asked[0][2] < 2:
        raise ConfigError(f"--box: the first box needs at least 2 replicas for a scatter (found {boxes_asked[0][2]})")
    out = Path(args.out)
    boxes = {(w, n_pairs): [replica(out, w, n_pairs, args.seed + k, args) for k in range(n)]
             for w, n_pairs, n in boxes_asked}
    temperatures = [r["temperature_k"] for results in boxes.values() for r in results]
    print(f"Fixed-charge baseline (TIP3P + Joung–Cheatham), Nosé–Hoover 1/ps, {args.length_ps:g} ps per replica, "
          f"cutoff {args.cutoff:g} nm; D in 1e-9 m²/s, Yeh–Hummer corrected with η = {args.viscosity:g} mPa·s; "
          f"Λ in S cm²/mol; mean ± standard error of the replicas (one replica: its {args.blocks}-block error); "
          f"replica mean kinetic temperatures {min(temperatures):.1f}–{max(temperatures):.1f} K.")
    print()
    print(means_table(boxes))
    print()
    print(honesty_table(boxes, args.length_ps))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
