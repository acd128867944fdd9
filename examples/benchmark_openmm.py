"""OpenMM speed of polarff against fixed-charge TIP3P and AMOEBA2018, and native-mode energy drift.

Two subcommands, each a single run whose table goes into docs/:

``speed`` (docs/openmm-benchmark.md)
    One box (``build_ion_box("NaCl", 1, 216, seed)``: 216 waters + 1 NaCl, 650 atoms), minimised once
    with TIP3P, then for each row a System on the same platform, warm-up steps excluded, ms/step and
    atom-steps/s measured side by side in this one process:

    ``tip3p``          fixed-charge TIP3P/JC PME (forcefields/fixed_charge_baseline.xml)
    ``torchforce``     polarff, openmm-torch TorchForce (``create_system``)
    ``pythonforce``    polarff, ``openmm.PythonForce`` (``create_system(implementation="python")``)
    ``native-amoeba``  polarff native mode, AmoebaMultipoleForce updated every 10 steps
    ``native-drude``   polarff native mode, DrudeForce (DrudeLangevinIntegrator) updated every 10 steps
    ``amoeba2018``     OpenMM's amoeba2018.xml, PME, mutual polarization (epsilon 1e-5, OpenMM's default)

    ``--profile`` adds a breakdown of one polarff energy+force evaluation (descriptors, network,
    permanent PME, induction, OpenMM overhead).

``drift`` (docs/native-mode.md)
    NVE (velocity Verlet, 1 fs) from one equilibrated start: the exact TorchForce against native mode
    updated every 1, 10 and 100 steps, and native mode never updated (AMOEBA at fixed parameters).

Usage::

    OMP_NUM_THREADS=2 python examples/benchmark_openmm.py speed --model nacl.pff --threads 2 --profile
    OMP_NUM_THREADS=1 python examples/benchmark_openmm.py drift --model nacl.pff --waters 64 --steps 2000

Without ``--model`` a model with the default architecture is trained for ``--train-epochs`` epochs on
the embedded data (speed does not depend on the weights; drift does, so pass a trained model there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone

import numpy as np

SPEED_ROWS = ("tip3p", "torchforce", "pythonforce", "native-amoeba", "native-drude", "amoeba2018")
TIMESTEP_PS = 0.001


# ---------------------------------------------------------------------------------------------- setup
def load_or_train_model(path: str | None, epochs: int, out_dir: str):
    """The model at ``path``, or a default-architecture model trained briefly on the embedded data."""
    from polarff.artifact import load_model

    if path:
        return load_model(path), path
    from polarff.cli import embedded_data_path
    from polarff.io import read_frames
    from polarff.model import FitConfig, fit

    model_path = os.path.join(out_dir, "benchmark_model.pff")
    if not os.path.exists(model_path):
        frames = read_frames(embedded_data_path())
        fit(frames, FitConfig(epochs=epochs, seed=0), out_path=model_path, progress=False)
    return load_model(model_path), model_path


def cpu_platform(threads: int):
    import openmm

    return openmm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)}


def equilibrated_box(n_waters: int, n_pairs: int, seed: int, cutoff_nm: float, threads: int,
                     equilibrate_steps: int):
    """Box minimised (and optionally Langevin-equilibrated at 300 K) with the TIP3P baseline."""
    import openmm
    from openmm import app, unit

    from polarff.build import build_ion_box, forcefield_path

    topology, positions, box = build_ion_box("NaCl", n_pairs, n_waters, seed)
    system = app.ForceField(forcefield_path("fixed_charge_baseline")).createSystem(
        topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff_nm * unit.nanometer)
    integrator = openmm.LangevinMiddleIntegrator(300.0, 5.0, TIMESTEP_PS)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, *cpu_platform(threads))
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 500)
    context.setVelocitiesToTemperature(300.0, seed)
    if equilibrate_steps:
        integrator.step(equilibrate_steps)
    state = context.getState(getPositions=True, getVelocities=True)
    return (topology, state.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
            state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond), box)


def build_row(name: str, model, topology, positions, cutoff_nm: float, update_interval: int):
    """(system, integrator, positions, updater or None, note) for one benchmark row."""
    import openmm
    from openmm import app, unit

    from polarff.build import forcefield_path
    from polarff.openmm.native import create_native_system, drude_integrator
    from polarff.openmm.system import create_system

    verlet = openmm.VerletIntegrator(TIMESTEP_PS)
    if name == "tip3p":
        system = app.ForceField(forcefield_path("fixed_charge_baseline")).createSystem(
            topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff_nm * unit.nanometer)
        return system, verlet, positions, None, "NonbondedForce PME, rigid water"
    if name in ("torchforce", "pythonforce"):
        implementation = "torch" if name == "torchforce" else "python"
        system = create_system(model, topology, implementation=implementation, nonbonded_cutoff_nm=cutoff_nm)
        return system, verlet, positions, None, f"create_system(implementation='{implementation}')"
    if name == "native-amoeba":
        native = create_native_system(model, topology, positions, mode="amoeba", update_interval=update_interval,
                                      nonbonded_cutoff_nm=cutoff_nm)
        return native.system, verlet, positions, native.updater, \
            f"AmoebaMultipoleForce (reference kernels), update every {update_interval} steps"
    if name == "native-drude":
        native = create_native_system(model, topology, positions, mode="drude", update_interval=update_interval,
                                      nonbonded_cutoff_nm=cutoff_nm)
        return native.system, drude_integrator("langevin", TIMESTEP_PS), native.positions_nm, native.updater, \
            f"DrudeForce + DrudeLangevinIntegrator, update every {update_interval} steps"
    if name == "amoeba2018":
        system = app.ForceField("amoeba2018.xml").createSystem(
            topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff_nm * unit.nanometer,
            vdwCutoff=cutoff_nm * unit.nanometer, polarization="mutual", mutualInducedTargetEpsilon=1e-5)
        return system, verlet, positions, None, "amoeba2018.xml, PME, mutual, epsilon 1e-5 (reference kernels)"
    raise SystemExit(f"unknown row {name!r}; expected some of {SPEED_ROWS}")


def time_row(system, integrator, positions, velocities, updater, threads: int, warmup: int, min_steps: int,
             min_seconds: float) -> dict:
    """Warm up, then time steps until both ``min_steps`` and ``min_seconds`` are reached."""
    import openmm

    platform_, properties = cpu_platform(threads)
    context = openmm.Context(system, integrator, platform_, properties)
    context.setPositions(positions)
    if velocities is not None and len(velocities) == system.getNumParticles():
        context.setVelocities(velocities)
    else:
        context.setVelocitiesToTemperature(300.0, 1)

    def advance(n):
        if updater is None:
            integrator.step(n)
        else:
            updater.step(context, n)

    advance(warmup)
    chunk = 1
    steps, elapsed = 0, 0.0
    while steps < min_steps or elapsed < min_seconds:
        start = time.perf_counter()
        advance(chunk)
        elapsed += time.perf_counter() - start
        steps += chunk
        chunk = min(chunk * 2, 50)
    return {"platform": context.getPlatform().getName(), "steps": steps, "seconds": elapsed,
            "ms_per_step": 1000.0 * elapsed / steps}


# ---------------------------------------------------------------------------------------------- profile
def profile_polarff(model, topology, positions, box_nm: float, cutoff_nm: float, repeats: int) -> dict:
    """Best-of-``repeats`` wall time (ms) of the parts of one polarff energy + autograd force evaluation.

    Each entry is a forward pass plus ``torch.autograd.grad`` to the positions: descriptors alone;
    descriptors + network (charges and polarizabilities); permanent-charge electrostatics alone (an
    ``Electrostatics`` with ``induction=False``); permanent + induction at fixed charges; the whole
    potential (eager and TorchScript), also with a 0.6 nm cutoff.
    """
    import torch

    from polarff.openmm.potential import PolarffPotential
    from polarff.openmm.system import formal_total_charge, intramolecular_pairs, topology_symbols
    from polarff.runtime.electrostatics import Electrostatics

    symbols = topology_symbols(topology)
    pairs = intramolecular_pairs(topology)
    total = formal_total_charge(symbols)

    def potential_at(cutoff):
        options = {"cutoff_nm": cutoff, "induction_cutoff_nm": min(cutoff, 0.9)}
        return PolarffPotential(model, symbols, pairs, True, total, None, options), options

    potential, options = potential_at(cutoff_nm)
    scripted = torch.jit.script(potential)
    permanent_only = Electrostatics(len(symbols), pairs, True, **dict(options, induction=False))
    box = torch.tensor(np.eye(3) * box_nm)
    pos_nm = torch.tensor(np.asarray(positions))
    cm = potential.charge_model
    with torch.no_grad():
        q, alpha = potential.charges_and_polarizabilities(pos_nm, box)
        n_features = cm.descriptors(pos_nm * 10, box * 10, True).shape[1]
    weights = torch.randn(len(symbols), n_features, dtype=torch.float64)

    def best(energy_fn):
        def once():
            x = pos_nm.clone().requires_grad_(True)
            torch.autograd.grad(energy_fn(x), x)
        for _ in range(5):  # TorchScript's profiling executor compiles during the first calls
            once()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            once()
            times.append(time.perf_counter() - start)
        return 1000.0 * min(times)

    out = {
        "descriptors": best(lambda x: (cm.descriptors(x * 10, box * 10, True) * weights).sum()),
        "descriptors + network": best(lambda x: sum(t.sum() for t in potential.charges_and_polarizabilities(x, box))),
        "permanent charges (real space + PME), fixed q": best(lambda x: permanent_only(x, box, q, alpha)),
        "permanent + induction, fixed q and alpha": best(lambda x: potential.electrostatics(x, box, q, alpha)),
        "whole potential, eager": best(lambda x: potential(x, box)),
        "whole potential, TorchScript": best(lambda x: scripted(x, box)),
    }
    if 0.6 < min(cutoff_nm, 0.5 * box_nm):
        short, _ = potential_at(0.6)
        out["whole potential, eager, 0.6 nm cutoff"] = best(lambda x: short(x, box))
    out["network (difference)"] = out["descriptors + network"] - out["descriptors"]
    out["induction (difference)"] = (out["permanent + induction, fixed q and alpha"]
                                     - out["permanent charges (real space + PME), fixed q"])
    return out


# ---------------------------------------------------------------------------------------------- commands
def machine_description() -> dict:
    info = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        info["cpu"] = names[0] if names else "unknown"
    except OSError:
        info["cpu"] = "unknown"
    info["load_average"] = list(os.getloadavg())
    return info


def versions() -> dict:
    import openmm
    import torch

    out = {"openmm": openmm.__version__, "torch": torch.__version__}
    try:
        import openmmtorch

        out["openmmtorch"] = getattr(openmmtorch, "__version__", "installed")
    except ImportError:
        out["openmmtorch"] = "missing"
    return out


def gpu_platforms() -> list[str]:
    import openmm

    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    return [n for n in names if n in ("CUDA", "OpenCL", "HIP")]


def run_speed(args) -> dict:
    import torch

    started, machine = datetime.now(timezone.utc).isoformat(timespec="seconds"), machine_description()
    torch.set_num_threads(args.threads)
    model, model_path = load_or_train_model(args.model, args.train_epochs, args.out_dir)
    topology, positions, velocities, box = equilibrated_box(args.waters, args.pairs, args.seed, args.cutoff,
                                                            args.threads, equilibrate_steps=0)
    n_atoms = topology.getNumAtoms()
    rows = {}
    for name in args.rows:
        system, integrator, row_positions, updater, note = build_row(name, model, topology, positions, args.cutoff,
                                                                     args.update_interval)
        row_velocities = velocities if len(row_positions) == len(positions) else None
        timing = time_row(system, integrator, row_positions, row_velocities, updater, args.threads, args.warmup,
                          args.min_steps, args.min_seconds)
        timing.update({"note": note, "atom_steps_per_s": n_atoms * 1000.0 / timing["ms_per_step"]})
        rows[name] = timing
        print(f"[speed] {name:14s} {timing['ms_per_step']:9.2f} ms/step on {timing['platform']} ({note})", flush=True)
    result = {"command": " ".join(sys.argv), "started": started, "machine_at_start": machine,
              "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_description(), "versions": versions(), "gpu_platforms": gpu_platforms(),
              "model": model_path, "n_atoms": n_atoms, "box_nm": box, "cutoff_nm": args.cutoff,
              "threads": args.threads, "rows": rows}
    if args.profile:
        result["profile_ms"] = profile_polarff(model, topology, positions, box, args.cutoff, repeats=3)
        for part, ms in result["profile_ms"].items():
            print(f"[profile] {part:50s} {ms:9.1f} ms", flush=True)
    result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["machine"] = machine_description()
    print(speed_table(result))
    return result


def speed_table(result: dict) -> str:
    rows = result["rows"]
    base = rows.get("tip3p", {}).get("ms_per_step")
    amoeba = rows.get("amoeba2018", {}).get("ms_per_step")
    lines = ["| row | platform | ms/step | atom-steps/s | × TIP3P cost | AMOEBA2018 / row |",
             "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        ratio = f"{row['ms_per_step'] / base:.1f}" if base else "–"
        speedup = f"{amoeba / row['ms_per_step']:.2f}" if amoeba else "–"
        lines.append(f"| {name} | {row['platform']} | {row['ms_per_step']:.2f} | {row['atom_steps_per_s']:.3g} | "
                     f"{ratio} | {speedup} |")
    return "\n".join(lines)


def run_drift(args) -> dict:
    import torch
    import openmm

    started, machine = datetime.now(timezone.utc).isoformat(timespec="seconds"), machine_description()
    from polarff.openmm.native import create_native_system, energy_drift, nve_energy_trace
    from polarff.openmm.system import create_system

    torch.set_num_threads(args.threads)
    model, model_path = load_or_train_model(args.model, args.train_epochs, args.out_dir)
    topology, positions, velocities, box = equilibrated_box(args.waters, args.pairs, args.seed, args.cutoff,
                                                            args.threads, equilibrate_steps=args.equilibrate)
    n_atoms = topology.getNumAtoms()
    runs = [("TorchForce (exact)", None)] + [(f"native every {n}", n) for n in args.intervals] + \
           [("native never updated", 0)]
    results = {}
    for label, interval in runs:
        updater = None
        if interval is None:
            system = create_system(model, topology, nonbonded_cutoff_nm=args.cutoff)
        else:
            native = create_native_system(model, topology, positions, update_interval=max(interval, 1),
                                          nonbonded_cutoff_nm=args.cutoff)
            system = native.system
            updater = native.updater if interval > 0 else None
        context = openmm.Context(system, openmm.VerletIntegrator(TIMESTEP_PS), *cpu_platform(args.threads))
        context.setPositions(positions)
        context.setVelocities(velocities)
        start = time.perf_counter()
        trace = nve_energy_trace(context, args.steps, args.sample_every, updater)
        drift = energy_drift(trace["time_ps"], trace["total"], n_atoms)
        drift["ms_per_step"] = 1000.0 * (time.perf_counter() - start) / args.steps
        drift["mean_temperature_k"] = float(np.mean(trace["kinetic"]) * 2 / (system_dof(system) * 0.00831446261815324))
        results[label] = drift
        print(f"[drift] {label:22s} slope {drift['slope_kj_mol_ps']:9.3f} kJ/mol/ps, "
              f"{drift['slope_kj_mol_ns_atom']:9.3f} kJ/mol/ns/atom, max |dE| {drift['max_deviation_kj_mol']:.2f}",
              flush=True)
    result = {"command": " ".join(sys.argv), "started": started, "machine_at_start": machine,
              "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_description(), "versions": versions(), "model": model_path, "n_atoms": n_atoms,
              "box_nm": box, "cutoff_nm": args.cutoff, "steps": args.steps, "timestep_ps": TIMESTEP_PS,
              "runs": results}
    print(drift_table(result))
    return result


def system_dof(system) -> int:
    """Degrees of freedom: 3 per massive particle, minus constraints, minus 3 for the removed CM motion."""
    import openmm

    massive = sum(1 for i in range(system.getNumParticles()) if system.getParticleMass(i)._value > 0)
    removes_cm = any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())
    return 3 * massive - system.getNumConstraints() - (3 if removes_cm else 0)


def drift_table(result: dict) -> str:
    lines = ["| run | drift (kJ/mol/ps) | drift (kJ/mol/ns per atom) | max abs(E(t) − E(0)) (kJ/mol) | "
             "RMS about fit (kJ/mol) | ms/step |", "|---|---|---|---|---|---|"]
    for label, d in result["runs"].items():
        lines.append(f"| {label} | {d['slope_kj_mol_ps']:.2f} | {d['slope_kj_mol_ns_atom']:.2f} | "
                     f"{d['max_deviation_kj_mol']:.2f} | {d['rms_residual_kj_mol']:.2f} | {d['ms_per_step']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("speed", "drift"):
        p = sub.add_parser(name)
        p.add_argument("--model", help="trained model (.pff); default: train a default-architecture model")
        p.add_argument("--train-epochs", type=int, default=3, help="epochs when training (default 3)")
        p.add_argument("--out-dir", default="build", help="where a trained model and --json go (default build)")
        p.add_argument("--pairs", type=int, default=1, help="NaCl pairs (default 1)")
        p.add_argument("--seed", type=int, default=7, help="box seed (default 7)")
        p.add_argument("--threads", type=int, default=2, help="CPU platform and torch threads (default 2)")
        p.add_argument("--json", help="also write the results as JSON here")
    speed = sub.choices["speed"]
    speed.add_argument("--waters", type=int, default=216)
    speed.add_argument("--cutoff", type=float, default=0.9, help="nonbonded cutoff, nm (default 0.9)")
    speed.add_argument("--rows", nargs="+", default=list(SPEED_ROWS), choices=SPEED_ROWS)
    speed.add_argument("--update-interval", type=int, default=10, help="native-mode update interval (steps)")
    speed.add_argument("--warmup", type=int, default=20,
                       help="untimed steps per row (default 20: TorchScript compiles during the first ~10 calls)")
    speed.add_argument("--min-steps", type=int, default=10, help="at least this many timed steps (default 10)")
    speed.add_argument("--min-seconds", type=float, default=20.0, help="and at least this long (default 20 s)")
    speed.add_argument("--profile", action="store_true", help="break one polarff evaluation into its parts")
    drift = sub.choices["drift"]
    drift.add_argument("--waters", type=int, default=64)
    drift.add_argument("--cutoff", type=float, default=0.6, help="nonbonded cutoff, nm (default 0.6)")
    drift.add_argument("--steps", type=int, default=2000, help="NVE steps of 1 fs (default 2000)")
    drift.add_argument("--sample-every", type=int, default=10)
    drift.add_argument("--equilibrate", type=int, default=2000, help="TIP3P Langevin steps first (default 2000)")
    drift.add_argument("--intervals", type=int, nargs="+", default=[1, 10, 100])
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    import torch  # noqa: F401  (before openmm: OpenMM loads the openmm-torch plugin only if libtorch is loaded)

    result = run_speed(args) if args.command == "speed" else run_drift(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
