"""Combine the polarff transport estimates of independent ``polarff benchmark`` replicas (other seeds).

A 2-core machine runs one long benchmark per core; each replica is a separate output folder with its own
``results.json``. This script prints one markdown table: every replica's D (Yeh–Hummer corrected) and
molar conductivity, and their combination (:func:`polarff.benchmark.combine_replicas`: equal weights; the
error is the larger of the block errors combined, √(Σ errorᵢ²)/n, and the replicas' scatter, s/√n, both
shown), each against experiment with the 15 % verdict of the benchmark report. The last column is the
sampling plan the replicas measure: how many replicas of their mean length give an error bar of 10 % of
experiment, (s / 0.1 x_exp)², from their scatter s (the per-run block errors can miss slow fluctuations).
A replica still running (no ``results.json`` yet) is read from its run folder, frames so far.

With ``--versus FOLDER...`` (replicas of another box at the same composition) a second table compares the
two sets, quantity by quantity: each set's combined value, and the ratio first / second with its error
propagated from both, σ_r = r √((σ₁/x₁)² + (σ₂/x₂)²). The diffusion rows come twice, as measured in the
periodic box (PBC) and Yeh–Hummer corrected: if the correction is right for the model, the corrected ratio
is 1 and the PBC ratio is not; the Λ rows measure the box effect on the conductivity directly. The last
columns extrapolate each quantity linearly in 1/L to an infinite box
(:func:`polarff.analysis.inverse_box_extrapolation`) and give that over the first set's value; a last line
gives the model's viscosity from the box dependence of its water's D
(:func:`polarff.analysis.viscosity_from_box_dependence`).

Examples (docs/charge-calibration.md, docs/replica-statistics.md)::

    python examples/combine_replicas.py build/benchmark-water111 build/benchmark-water111-seed8
    python examples/combine_replicas.py build/bench-nh-s{7,8,9} --versus build/bench-nh-256-s{7,8}
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from polarff.analysis import inverse_box_extrapolation, viscosity_from_box_dependence
from polarff.benchmark import agreement, combine_replicas, fmt
from polarff.errors import ConfigError, InputError
from polarff.simulate import recorded_config


def read_transport(folder: str, run: str) -> dict:
    """``results["transport"][run]`` of one benchmark output folder.

    A folder without ``results.json`` whose run is under way (or was stopped) is analysed from its run folder,
    ``FOLDER/runs/RUN``, frames so far, as ``polarff benchmark`` analyses a finished run
    (:func:`polarff.benchmark.analyze_transport`, 5 blocks), with the lag window the finished run will get
    (10–50 % of a fifth of the planned ``length_ps`` in ``run.json``) once the frames so far reach it, else the
    default of the frames so far; the table's header shows the length that was read.
    """
    path = Path(folder) / "results.json"
    run_folder = Path(folder) / "runs" / run
    if not path.exists() and run_folder.is_dir():
        from polarff.analysis.diffusion import DEFAULT_FIT_FRACTIONS
        from polarff.benchmark import analyze_transport
        from polarff.simulate import RUN_RECORD, load_trajectory

        traj = load_trajectory(str(run_folder))
        window = None
        if (run_folder / RUN_RECORD).exists():
            planned_block = float(recorded_config(json.loads((run_folder / RUN_RECORD).read_text()))["length_ps"]) / 5
            times = traj["time"]
            longest_lag = (len(times) // 5 - 1) * float(times[1] - times[0])
            if DEFAULT_FIT_FRACTIONS[1] * planned_block <= longest_lag:
                window = tuple(f * planned_block for f in DEFAULT_FIT_FRACTIONS)
        return analyze_transport(traj, n_blocks=5, fit_window=window)[0]
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the benchmark results: {exc}", file=str(path), field="transport",
                         expected="results.json written by polarff benchmark", found=type(exc).__name__) from None
    runs = results.get("transport", {})
    if run not in runs:
        raise InputError("run not in the benchmark results", file=str(path), field=f"transport.{run}",
                         expected=run, found=", ".join(sorted(runs)) or "no runs")
    return runs[run]


#: Settings of the run record (``runs/RUN/run.json``, key ``config``) that replicas must share: the same
#: model, and the same thermostat and coupling (a Langevin friction slows transport, docs/thermostat-friction.md).
SHARED_SETTINGS = ("model", "thermostat", "friction_per_ps", "collision_frequency_per_ps")


def run_settings(folder: str, run: str) -> dict:
    """The :data:`SHARED_SETTINGS` of one replica's run record (empty where there is no record)."""
    path = Path(folder) / "runs" / run / "run.json"
    if not path.exists():
        return {}
    config = recorded_config(json.loads(path.read_text()))
    return {key: config[key] for key in SHARED_SETTINGS}


def replicas_needed(combined: dict, reference: float | None, n_replicas: int, target: float = 0.10) -> str:
    """Replicas (of the combined ones' length) whose mean has a standard error of ``target`` × experiment,
    from the replicas' sample standard deviation; 'n/a' for one replica or no reference."""
    spread = combined["scatter_error"] * math.sqrt(n_replicas)
    if not (reference and math.isfinite(spread)):
        return "n/a"
    return str(max(1, math.ceil((spread / (target * abs(reference))) ** 2)))


def table(folders: list[str], run: str, transports: list[dict]) -> str:
    """Markdown table: one row per quantity, one column per replica, then the combination."""
    settings = {f: run_settings(f, run) for f in folders}
    for key in SHARED_SETTINGS:
        values = {f: s.get(key) for f, s in settings.items()}
        if len(set(values.values())) > 1:
            raise InputError("replicas of different runs", file=", ".join(folders),
                             field=f"runs/{run}/run.json config.{key}", expected=f"one {key}",
                             found="; ".join(f"{f}: {v}" for f, v in values.items()))
    combined = combine_replicas(transports)
    head = ["quantity", *[f"{Path(f).name} ({t['length_ps']:.0f} ps)" for f, t in zip(folders, transports)],
            f"combined ({combined['length_ps']:.0f} ps)", "error: blocks / scatter", "experiment", "verdict",
            f"{combined['length_ps'] / len(folders):.0f} ps replicas for ± 10 %"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    temperatures = [fmt(t, digits=1) for t in combined["kinetic_temperature_k"]]
    lines.append("| mean kinetic T (K) | " + " | ".join(temperatures) + " | | | | | |")
    rows = [(f"D({s}) (1e-9 m²/s)", d, d["experiment"]["value"]) for s, d in combined["diffusion"].items()]
    names = {"molar_conductivity": "Λ EH (S cm²/mol)", "molar_conductivity_formal": "Λ EH, formal charges",
             "molar_conductivity_yh_scaled": "Λ EH × Yeh–Hummer factor (upper estimate for a large box)"}
    experiment = combined["conductivity"].get("experiment", {}).get("value")
    rows += [(names[k], combined["conductivity"][k], experiment) for k in names if k in combined["conductivity"]]
    for label, c, reference in rows:
        cells = [fmt(v, e) for v, e in c["replicas"]] + [
            fmt(c["value"], c["error"]), f"{fmt(c['block_error'])} / {fmt(c['scatter_error'])}", fmt(reference),
            agreement(c["value"], c["error"], reference), replicas_needed(c, reference, len(folders))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio(first: tuple[float, float], second: tuple[float, float]) -> tuple[float, float]:
    """first / second of two independent estimates (value, error), with the error propagated from both."""
    (a, da), (b, db) = first, second
    r = a / b
    return r, abs(r) * math.hypot(da / a, db / b)


def box_label(transports: list[dict]) -> str:
    """'64 H₂O + 1 NaCl, 1.25 nm, n = 12': the composition, mean box edge and number of replicas of a set."""
    first = transports[0]
    edge = sum(t["box_nm"] for t in transports) / len(transports)
    return f"{first['n_waters']} H₂O + {first['n_pairs']} NaCl, {edge:.2f} nm, n = {len(transports)}"


def comparison(first: list[str], second: list[str], run: str, sets: list[list[dict]]) -> str:
    """Markdown table: each quantity of two sets of replicas (two boxes, ``sets`` read from the folders
    ``first`` and ``second``) and the ratio first / second."""
    for key in ("n_waters", "n_pairs"):
        if sets[0][0][key] == 0 or sets[1][0][key] == 0:
            raise InputError("a set without water or ions", file=", ".join(first + second), field=f"transport.{run}.{key}",
                             expected="waters and ion pairs in both sets", found=f"{sets[0][0][key]} and {sets[1][0][key]}")
    molalities = [s[0]["n_pairs"] / s[0]["n_waters"] for s in sets]
    if not math.isclose(*molalities, rel_tol=1e-6):
        raise InputError("the two sets differ in composition", file=f"{first[0]}, {second[0]}",
                         field=f"transport.{run}.n_pairs / n_waters", expected=f"{molalities[0]:.5f} in both",
                         found=f"{molalities[1]:.5f}")
    combined = [combine_replicas(s) for s in sets]
    rows, pbc_by_species = [], {}
    for species in combined[0]["diffusion"]:
        pbc = [(float(sum(t["diffusion"][species]["pbc"] for t in s) / len(s)), c["diffusion"][species]["error"])
               for s, c in zip(sets, combined)]
        corrected = [(c["diffusion"][species]["value"], c["diffusion"][species]["error"]) for c in combined]
        pbc_by_species[species] = pbc
        rows += [(f"D({species}) PBC (1e-9 m²/s)", pbc), (f"D({species}) Yeh–Hummer corrected", corrected)]
    names = {"molar_conductivity": "Λ EH (S cm²/mol)", "molar_conductivity_formal": "Λ EH, formal charges",
             "molar_conductivity_yh_scaled": "Λ EH × Yeh–Hummer factor"}
    rows += [(label, [(c["conductivity"][key]["value"], c["conductivity"][key]["error"]) for c in combined])
             for key, label in names.items() if all(key in c["conductivity"] for c in combined)]
    edges = [sum(t["box_nm"] for t in s) / len(s) for s in sets]
    head = ["quantity", box_label(sets[0]), box_label(sets[1]), "first / second", "1/L → ∞", "∞ / first"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    same_box = math.isclose(edges[0], edges[1], rel_tol=1e-3)  # two sets of one box: nothing to extrapolate
    for label, (a, b) in rows:
        extrapolated = ["n/a", "n/a"]
        if not same_box:
            infinite, infinite_error, gain, gain_error = inverse_box_extrapolation((*a, edges[0]), (*b, edges[1]))
            extrapolated = [fmt(infinite, infinite_error), fmt(gain, gain_error, digits=3)]
        lines.append(f"| {label} | {fmt(*a)} | {fmt(*b)} | {fmt(*ratio(a, b), digits=3)} | "
                     + " | ".join(extrapolated) + " |")
    if not same_box and "H2O" in pbc_by_species:
        lines += ["", water_viscosity_line(sets, pbc_by_species["H2O"], edges)]
    return "\n".join(lines)


def water_viscosity_line(sets: list[list[dict]], water_pbc: list[tuple[float, float]], edges: list[float]) -> str:
    """The model's viscosity from the box dependence of its water's periodic-box D
    (:func:`polarff.analysis.viscosity_from_box_dependence`), beside the one the Yeh–Hummer column used."""
    temperature = sum(t["temperature_k"] for s in sets for t in s) / sum(len(s) for s in sets)
    used = sets[0][0].get("viscosity_mpa_s")
    (d1, s1), (d2, s2) = water_pbc
    slope, slope_error = d2 - d1, math.hypot(s1, s2)
    head = (f"Viscosity from the box dependence of D(H₂O) (PBC), Yeh and Hummer's route: D₂ − D₁ = "
            f"{fmt(slope, slope_error)} ({slope / slope_error:.1f} σ)")
    used_note = f"the Yeh–Hummer corrections above use {used} mPa·s"
    if slope >= 2 * slope_error:
        eta, eta_error = viscosity_from_box_dependence((d1, s1, edges[0]), (d2, s2, edges[1]), temperature)
        return f"{head}, η = {fmt(eta, eta_error)} mPa·s ({used_note})."
    if slope + 2 * slope_error <= 0:
        return f"{head}: not resolved, the larger box's water is not faster ({used_note})."
    # the slope is below 2σ: its 2σ upper end bounds η from below
    bound, _ = viscosity_from_box_dependence((d1, s1, edges[0]), (d1 + slope + 2 * slope_error, s2, edges[1]),
                                             temperature)
    return f"{head}: not resolved; η > {bound:.2f} mPa·s at 2σ ({used_note})."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="polarff benchmark output folders (each with results.json)")
    parser.add_argument("--run", default="polarff-nacl", help="run to combine (default polarff-nacl)")
    parser.add_argument("--versus", nargs="+", metavar="FOLDER",
                        help="replicas of another box at the same composition: also print the ratio table")
    args = parser.parse_args(argv)
    try:
        # each folder is read once, so that the tables of a run still under way show the same frames
        first = [read_transport(f, args.run) for f in args.folders]
        print(table(args.folders, args.run, first))
        if args.versus:
            second = [read_transport(f, args.run) for f in args.versus]
            print()
            print(table(args.versus, args.run, second))
            print()
            print(comparison(args.folders, args.versus, args.run, [first, second]))
    except (InputError, ConfigError) as exc:
        print(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
