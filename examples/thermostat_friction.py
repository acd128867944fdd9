"""How much the Langevin friction of a thermostat slows diffusion and conduction.

OpenMM's LangevinMiddleIntegrator (the thermostat of ``polarff simulate`` by default, and of
``polarff benchmark`` before 2026-12-07) puts a friction force −m γ v and a random force on every atom, which
slows every transport coefficient by an amount that grows with γ. This script measures it with the
fixed-charge baseline (TIP3P + Joung–Cheatham, ``fixed_charge_baseline``; about 10 ms per step for 512 waters,
so a box large enough for small error bars is cheap): one pre-equilibrated salt box, the same run at each
friction and, with ``--nose-hoover``, with a global Nosé–Hoover chain, which leaves the dynamics as in NVE.
For each run: the self-diffusion coefficients in the periodic box (no Yeh–Hummer term: the thermostat changes
the effective viscosity too, so the raw periodic values are what is compared) and the Einstein–Helfand
molar conductivity, each relative to the Nosé–Hoover run (else the smallest friction, or ``--reference``).
The mean kinetic temperature of each run is printed beside it: a friction too weak to carry off the
integrator's energy drift lets the run heat up, and water diffuses about 2 % faster per kelvin.

Example (docs/thermostat-friction.md; about 17 minutes per thermostat on one core)::

    OMP_NUM_THREADS=1 python examples/thermostat_friction.py --out build/friction --waters 512 --pairs 9 \\
        --frictions 1 0.1 0.01 --nose-hoover 1 --length-ps 200

Every run is resumable (``polarff.simulate.run_simulation``) and skipped once finished, so a rerun only
prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from polarff.errors import ConfigError

#: Species labels of :func:`polarff.benchmark.analyze_transport`.
SPECIES = ("H2O", "Na+", "Cl-")


def run_config(box_pdb: str, thermostat: str, coupling_per_ps: float, args: argparse.Namespace, out: Path):
    """The :class:`polarff.simulate.SimulationConfig` of one run of the fixed-charge baseline: ``thermostat``
    'langevin' with friction ``coupling_per_ps`` or 'nose-hoover' with that collision frequency."""
    from polarff.simulate import SimulationConfig

    coupling = ({"friction_per_ps": coupling_per_ps} if thermostat == "langevin"
                else {"collision_frequency_per_ps": coupling_per_ps})
    return SimulationConfig(topology=box_pdb, forcefield="fixed_charge_baseline", ensemble="nvt",
                            thermostat=thermostat, **coupling, temperature_k=298.15, timestep_fs=2.0,
                            length_ps=args.length_ps, equilibration_ps=args.equilibration_ps, minimize=False,
                            cutoff_nm=args.cutoff, report_interval_fs=args.report_interval_fs,
                            energy_interval_fs=1000.0, checkpoint_interval_ps=10.0, threads=args.threads,
                            seed=args.seed, output=str(out))


def measure(folder: Path, n_blocks: int) -> dict:
    """PBC diffusion coefficients (1e-9 m²/s) and Einstein–Helfand Λ (S cm²/mol) of one finished run."""
    from polarff.benchmark import analyze_transport
    from polarff.simulate import load_trajectory

    summary, _ = analyze_transport(load_trajectory(str(folder)), n_blocks=n_blocks)
    result = {s: [summary["diffusion"][s]["pbc"], summary["diffusion"][s]["error"]] for s in SPECIES
              if s in summary["diffusion"]}
    lam = summary["conductivity"]["molar_conductivity_formal"]
    result["Lambda"] = [lam["value"], lam["error"]]
    result["temperature_k"] = summary["kinetic_temperature_k"]  # measured, not the set value
    result["box_nm"] = summary["box_nm"]
    result["length_ps"] = summary["length_ps"]
    return result


def ratio(value: float, error: float, ref: float, ref_error: float) -> tuple[float, float]:
    """value / ref with the standard error of independent estimates (NaN for a reference that is not > 0)."""
    if not ref > 0:
        return float("nan"), float("nan")
    r = value / ref
    return r, r * float(np.hypot(error / value, ref_error / ref))


def table(results: dict[str, dict], reference: str) -> str:
    """Markdown table: per run (label: thermostat and coupling) the mean kinetic temperature, the PBC values
    and their ratio to the ``reference`` run."""
    ref = results[reference]
    names = {"H2O": "D(H₂O)", "Na+": "D(Na⁺)", "Cl-": "D(Cl⁻)", "Lambda": "Λ EH (S cm²/mol)"}
    keys = [k for k in names if k in ref]
    short = {"H2O": "D(H₂O)", "Na+": "D(Na⁺)", "Cl-": "D(Cl⁻)", "Lambda": "Λ"}
    head = ["thermostat (1/ps)", "T (K)", *[names[k] for k in keys], *[f"{short[k]} ratio" for k in keys]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in results.items():
        values = [f"{r[k][0]:.3f} ± {r[k][1]:.3f}" if k != "Lambda" else f"{r[k][0]:.1f} ± {r[k][1]:.1f}"
                  for k in keys]
        ratios = ["1" if label == reference else "{:.3f} ± {:.3f}".format(*ratio(*r[k], *ref[k])) for k in keys]
        lines.append("| " + " | ".join([label, f"{r['temperature_k']:.1f}", *values, *ratios]) + " |")
    return "\n".join(lines) + f"\n\nratio: to the run '{reference}'."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="build/friction", help="output folder (box, one run per friction)")
    p.add_argument("--waters", type=int, default=512, help="waters in the box (default 512)")
    p.add_argument("--pairs", type=int, default=9, help="NaCl pairs (default 9: 0.98 mol/kg with 512 waters)")
    p.add_argument("--frictions", type=float, nargs="+", default=[1.0, 0.1, 0.01],
                   help="Langevin frictions, 1/ps")
    p.add_argument("--nose-hoover", type=float, default=None, metavar="FREQUENCY",
                   help="also run a Nosé–Hoover chain with this collision frequency (1/ps): global, so it leaves "
                        "transport as in NVE while it holds the temperature; the reference when given")
    p.add_argument("--reference", type=float, default=None,
                   help="Langevin friction the others are compared with (default: the Nosé–Hoover run if any, "
                        "else the smallest friction; a friction too weak to carry off the integrator's energy "
                        "drift heats its run)")
    p.add_argument("--length-ps", type=float, default=200.0, help="production per friction (ps)")
    p.add_argument("--equilibration-ps", type=float, default=5.0, help="equilibration per friction (ps)")
    p.add_argument("--report-interval-fs", type=float, default=100.0, help="time between frames (fs)")
    p.add_argument("--cutoff", type=float, default=0.9, help="nonbonded cutoff (nm)")
    p.add_argument("--blocks", type=int, default=5, help="blocks for the error bars")
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    p.add_argument("--seed", type=int, default=7, help="seed of the box and of every run")
    args = p.parse_args(argv)
    if any(not f > 0 for f in args.frictions) or len(set(args.frictions)) < 2:
        raise ConfigError(f"--frictions: expected two or more different values > 0 (found {args.frictions})")
    if args.reference is not None and args.reference not in args.frictions:
        raise ConfigError(f"--reference: expected one of --frictions {args.frictions} (found {args.reference:g})")
    if args.nose_hoover is not None and not args.nose_hoover > 0:
        raise ConfigError(f"--nose-hoover: expected a collision frequency > 0 (found {args.nose_hoover:g})")
    runs = {f"Langevin {f:g}": ("langevin", f, f"gamma{f:g}") for f in args.frictions}
    if args.nose_hoover is not None:
        runs[f"Nosé–Hoover {args.nose_hoover:g}"] = ("nose-hoover", args.nose_hoover, f"nh{args.nose_hoover:g}")
    if args.reference is not None:
        reference = f"Langevin {args.reference:g}"
    elif args.nose_hoover is not None:
        reference = f"Nosé–Hoover {args.nose_hoover:g}"
    else:
        reference = f"Langevin {min(args.frictions):g}"

    from polarff.simulate import RUN_RECORD, TRAJECTORY_NPZ, run_simulation, write_equilibrated_box

    out = Path(args.out)
    box = out / "box.pdb"
    if not box.exists():
        write_equilibrated_box(box, "NaCl", args.pairs, args.waters, args.seed, threads=args.threads)
    results = {}
    for label, (thermostat, coupling, name) in runs.items():
        folder = out / name
        if not ((folder / TRAJECTORY_NPZ).exists() and (folder / RUN_RECORD).exists()):
            print(f"[friction] {label}/ps: {args.length_ps:g} ps", file=sys.stderr, flush=True)
            run_simulation(run_config(str(box), thermostat, coupling, args, folder), folder)
        results[label] = measure(folder, args.blocks)
    (out / "friction.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    first = next(iter(results.values()))
    print(f"{args.waters} H2O + {args.pairs} NaCl, box {first['box_nm']:.3f} nm, {first['length_ps']:.0f} ps "
          f"per friction, fixed-charge baseline, set temperature 298.15 K; D in 1e-9 m^2/s (periodic box), errors "
          f"from {args.blocks} blocks")
    print(table(results, reference))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
