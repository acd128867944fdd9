"""How an ion polarizes, and is polarized by, its liquid first shell: a polarff model against Kohn–Sham DFT.

For frames of a finished polarff salt run, the ion (Cl⁻ or Na⁺) and the whole waters whose O lies within the
first minimum of the ion–O g(r) are cut out (``polarff.clusters.cut_cluster``, the ion at the origin). For the
cluster, its waters alone and the ion alone, the model and DFT each give

* the polarizability tensor α (Å³; the model's through its Thole-damped induction, DFT's by linear response), and
* the zero-field dipole about the ion (e·Å; well defined for the charged cluster with that origin).

Two differences isolate what the ion does in its shell:

* ``Δα = ᾱ(ion + waters) − ᾱ(waters)``: the ion's polarizability in its shell (isotropic mean, Å³), to set
  beside the free ion's ᾱ;
* ``Δμ = |μ(ion + waters) − μ(waters)|``: the dipole the ion's presence creates in the cluster (the ion's own
  induced dipole, the extra polarization of the waters and charge transfer together).

The model's numbers are also given with the ion's polarizability scaled (``--alpha-factors``): the factor at
which the model's Δα and Δμ meet DFT's is the in-liquid scaling that DFT supports. DFT is B3LYP/def2-SVPD, the
level the model's polarizability labels are calibrated to (docs/polarizability-labels.md), by linear response
with density fitting (``polarff.clusters.dft_response_cpks``).

Example (docs/chloride.md, section 6)::

    OMP_NUM_THREADS=1 python examples/ion_shell_response.py \\
        build/benchmark-water113-hardness/runs/polarff-nacl --times-ps 25 75 125 --json build/cl/response.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SHELL_A = {"Na": 3.2, "Cl": 3.8}  # first minimum of the ion–O g(r) (Å), as in polarff.benchmark
FORMAL = {"Na": 1.0, "Cl": -1.0}


def shell_parts(frame, ion: str):
    """(ion + shell waters, shell waters, ion alone) as non-periodic frames with the ion at the origin."""
    from polarff.clusters import cut_cluster
    from polarff.data import Frame

    centre = [i for i, s in enumerate(frame.symbols) if s == ion]
    if len(centre) != 1:
        raise ValueError(f"{frame.where()}: expected one {ion} ion, found {len(centre)}")
    cluster = cut_cluster(frame, centre[0], SHELL_A[ion], neighbours="neutral")
    keep = [i for i, s in enumerate(cluster.symbols) if s != ion]
    waters = Frame(symbols=[cluster.symbols[i] for i in keep], positions=cluster.positions[keep],
                   total_charge=0.0, info={"source": "shell waters", "index": frame.info.get("index")})
    alone = Frame(symbols=[ion], positions=np.zeros((1, 3)), total_charge=FORMAL[ion],
                  info={"source": f"free {ion}"})
    return cluster, waters, alone


def model_response(model, frame, ion: str, alpha_factor: float = 1.0, ion_thole: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """The model's α tensor (Å³), zero-field dipole about the origin (e·Å) and the ion's own α (Å³) for a
    non-periodic frame, the ion's polarizability multiplied by ``alpha_factor`` and, when given, its Thole
    strength set to ``ion_thole`` (otherwise the model's: ``model.thole_per_atom``)."""
    import torch

    from polarff.data import molecules
    from polarff.openmm.potential import charge_model_for
    from polarff.response import FrameGeometry, frame_polarizability, induced_dipoles

    molecule = molecules(frame)
    pairs = [(i, j) for i in range(frame.n_atoms) for j in range(i + 1, frame.n_atoms) if molecule[i] == molecule[j]]
    charges = charge_model_for(model, list(frame.symbols), frame.total_charge, pairs)  # the model's constraint
    with torch.no_grad():
        q, alpha = charges(torch.tensor(frame.positions), torch.zeros((3, 3), dtype=torch.float64), False)
    q, alpha = q.numpy(), alpha.numpy().copy()
    is_ion = np.array([s == ion for s in frame.symbols])
    alpha[is_ion] *= alpha_factor
    thole = np.array(model.thole_per_atom(list(frame.symbols)))
    if ion_thole is not None:
        thole[is_ion] = ion_thole
    geometry = FrameGeometry.from_frame(frame)
    dipole = q @ frame.positions + induced_dipoles(geometry, q, alpha, a=thole).sum(axis=0)
    return frame_polarizability(geometry, alpha, a=thole), dipole, float(alpha[is_ion].sum())


def isotropic(alpha: np.ndarray) -> float:
    """tr(α)/3 of a 3×3 tensor (Å³)."""
    return float(np.trace(alpha) / 3.0)


def compare_frame(model, frame, ion: str, factors, qm: bool = True, basis: str = "def2-svpd",
                  threads: int = 1) -> dict:
    """Δα and Δμ of one frame's ion shell, the model at each α factor and (when ``qm``) B3LYP (linear
    response with density fitting: :func:`polarff.clusters.dft_response_cpks`)."""
    from polarff.clusters import dft_response_cpks

    cluster, waters, alone = shell_parts(frame, ion)
    row = {"frame": frame.info.get("index"), "ion": ion, "n_waters": len(waters.symbols) // 3, "model": {}}
    for factor in factors:
        a_c, mu_c, a_ion = model_response(model, cluster, ion, factor)
        a_w, mu_w, _ = model_response(model, waters, ion, factor)
        a_free, _, _ = model_response(model, alone, ion, factor)
        row["model"][f"{factor:g}"] = {"ion_alpha_A3": a_ion, "free_alpha_A3": isotropic(a_free),
                                       "delta_alpha_A3": isotropic(a_c) - isotropic(a_w),
                                       "delta_mu_eA": float(np.linalg.norm(mu_c - mu_w))}
    if qm:
        start = time.perf_counter()
        c, w, f = (dft_response_cpks(x, basis=basis, threads=threads) for x in (cluster, waters, alone))
        row["dft"] = {"method": c.method, "free_alpha_A3": f.isotropic, "delta_alpha_A3": c.isotropic - w.isotropic,
                      "delta_mu_eA": float(np.linalg.norm(c.dipole - w.dipole)), "seconds": time.perf_counter() - start}
    return row


def interpolate_factor(factors, model_values, target: float) -> tuple[float, bool]:
    """The α factor at which the model's value, linear between the scanned factors, equals ``target``, and
    whether it lies outside the scan (then extrapolated along the line through the two outermost points on
    that side)."""
    x, y = np.asarray(factors, float), np.asarray(model_values, float)
    order = np.argsort(y)
    x, y = x[order], y[order]
    if y[0] <= target <= y[-1]:
        return float(np.interp(target, y, x)), False
    i, j = (0, 1) if target < y[0] else (-2, -1)
    return float(x[i] + (target - y[i]) * (x[j] - x[i]) / (y[j] - y[i])), True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="finished polarff salt runs (folders of polarff simulate)")
    parser.add_argument("--model", default="forcefields/nacl_gfn2_water113_hardness.pff", help="polarff model")
    parser.add_argument("--ions", nargs="+", default=["Cl"], choices=sorted(SHELL_A))
    parser.add_argument("--times-ps", type=float, nargs="+", default=[25.0, 75.0, 125.0],
                        help="frames to cut, by simulation time (ps)")
    parser.add_argument("--alpha-factors", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.25])
    parser.add_argument("--basis", default="def2-svpd", help="DFT basis (B3LYP)")
    parser.add_argument("--threads", type=int, default=1, help="pyscf threads")
    parser.add_argument("--no-qm", action="store_true", help="model only")
    parser.add_argument("--json", help="write (and resume from) the results here")
    parser.add_argument("--summarize", nargs="+", metavar="JSON", help="only print the summary of these result "
                        "files together (e.g. of processes run in parallel on different runs)")
    args = parser.parse_args(argv)
    if args.summarize:
        import json

        rows = {(r["run"], r["ion"], r["time_ps"]): r
                for path in args.summarize for r in json.loads(Path(path).read_text())}
        summarize(list(rows.values()), args.alpha_factors)  # a frame found in several files counts once
        return 0
    if not args.runs:
        parser.error("give finished runs (or --summarize)")

    from polarff.artifact import load_model
    from polarff.fileio import write_json
    from polarff.simulate import load_trajectory, trajectory_frame

    model = load_model(args.model)
    done = []
    if args.json and Path(args.json).exists():
        import json

        done = json.loads(Path(args.json).read_text())
    rows = list(done)
    keys = {(r["run"], r["ion"], r["time_ps"]) for r in rows}
    for run in args.runs:
        traj = load_trajectory(run)
        times = np.asarray(traj["time"])
        for t_ps in args.times_ps:
            index = int(np.argmin(np.abs(times - t_ps)))
            frame = trajectory_frame(traj, index)
            for ion in args.ions:
                if (run, ion, float(times[index])) in keys:
                    continue
                row = compare_frame(model, frame, ion, args.alpha_factors, not args.no_qm, args.basis, args.threads)
                row.update({"run": run, "time_ps": float(times[index])})
                rows.append(row)
                qm = (f"  DFT Δα {row['dft']['delta_alpha_A3']:6.2f} Δμ {row['dft']['delta_mu_eA']:6.3f} "
                      f"({row['dft']['seconds']:.0f} s)" if "dft" in row else "")
                one = row["model"][f"{args.alpha_factors[0]:g}"]
                print(f"{run} t={row['time_ps']:.0f} ps {ion}+{row['n_waters']} H2O: model Δα "
                      f"{one['delta_alpha_A3']:6.2f} Δμ {one['delta_mu_eA']:6.3f}{qm}", flush=True)
                if args.json:
                    write_json(args.json, rows)
    summarize(rows, args.alpha_factors)
    return 0


def summarize(rows: list[dict], factors) -> None:
    """Print means over frames of Δα, Δμ for each ion, and the α factors at which the model meets DFT."""
    for ion in sorted({r["ion"] for r in rows}):
        sel = [r for r in rows if r["ion"] == ion]
        print(f"\n{ion}: {len(sel)} frames (mean ± standard error over frames)")
        print(f"{'':22s} {'ion α':>7s} {'free ᾱ':>7s} {'Δα (Å³)':>13s} {'Δμ (e·Å)':>15s}")

        def stats(values):
            v = np.asarray(values, float)
            return v.mean(), (v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan"))

        for factor in factors:
            key = f"{factor:g}"
            if not all(key in r["model"] for r in sel):
                continue
            m = [r["model"][key] for r in sel]
            da, dm = stats([x["delta_alpha_A3"] for x in m]), stats([x["delta_mu_eA"] for x in m])
            print(f"model, α(ion) × {factor:<5g} {np.mean([x['ion_alpha_A3'] for x in m]):7.2f} "
                  f"{m[0]['free_alpha_A3']:7.2f} {da[0]:6.2f} ± {da[1]:4.2f} {dm[0]:7.3f} ± {dm[1]:5.3f}")
        qm = [r["dft"] for r in sel if "dft" in r]
        if qm and len(qm) == len(sel):
            da, dm = stats([x["delta_alpha_A3"] for x in qm]), stats([x["delta_mu_eA"] for x in qm])
            print(f"{qm[0]['method'].split(' ')[0]:22s} {'':7s} {qm[0]['free_alpha_A3']:7.2f} "
                  f"{da[0]:6.2f} ± {da[1]:4.2f} {dm[0]:7.3f} ± {dm[1]:5.3f}")
            ratio = stats([r["model"][f"{factors[0]:g}"]["delta_mu_eA"] / r["dft"]["delta_mu_eA"] for r in sel])
            print(f"  Δμ model (α × {factors[0]:g}) / DFT, frame by frame: {ratio[0]:.2f} ± {ratio[1]:.2f}")
            for name in ("delta_alpha_A3", "delta_mu_eA"):
                model_means = [np.mean([r["model"][f"{f:g}"][name] for r in sel]) for f in factors]
                f_match, outside = interpolate_factor(factors, model_means, float(np.mean([x[name] for x in qm])))
                where = f"{f_match:.2f}" + (" (extrapolated beyond the scanned factors)" if outside else "")
                if f_match < 0:
                    where = "none (scaling the ion's α alone cannot reach DFT's value)"
                print(f"  α factor at which the model's {name} meets DFT's: {where}")


if __name__ == "__main__":
    raise SystemExit(main())
