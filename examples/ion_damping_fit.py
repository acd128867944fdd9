"""Fit an ion's Thole damping strength to DFT: the dipole the ion sets up in its liquid first shell.

Input: the per-frame results of ``examples/ion_shell_response.py`` (B3LYP Δα and Δμ of ion shells cut from
finished polarff salt runs; the runs must still be on disk). The same shells are cut again and the model's
Δα and Δμ (defined there) are evaluated on a grid of the ion's polarizability factor × the ion's Thole
strength ``a`` (a pair uses ``min(a_i, a_j)``, so the ion's value damps all its pairs with water; water keeps
the model's own). Printed per (factor, a), over the frames: the model/DFT ratio of Δμ frame by frame
(mean ± standard error), the mean Δα beside DFT's, and the rms error of Δμ (e·Å); then, per factor, the
``a`` of least rms Δμ error. Write the chosen variant with ``examples/chloride_radius_scan.py
--write-variant OUT.pff --cl-polarizability-factor F --thole Cl=A``.

Example (docs/chloride.md, section 8; about 2 min on one core)::

    python examples/ion_damping_fit.py build/cl/response_cl.json build/cl/response_cl_s9.json --ion Cl \\
        --alpha-factors 1 1.483 --thole-values 0.39 0.2 0.16 0.14 0.12 0.1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ion_shell_response import isotropic, model_response, shell_parts


def scan(model, rows: list[dict], ion: str, factors, thole_values) -> tuple[np.ndarray, np.ndarray]:
    """Model (Δμ e·Å, Δα Å³) per frame, factor and ``a``, shape (frames, factors, a values, 2), and DFT's
    (Δμ, Δα) per frame, shape (frames, 2)."""
    from polarff.simulate import load_trajectory, trajectory_frame

    model_values = np.zeros((len(rows), len(factors), len(thole_values), 2))
    dft = np.zeros((len(rows), 2))
    trajectories: dict = {}
    for k, row in enumerate(rows):
        traj = trajectories.setdefault(row["run"], load_trajectory(row["run"]))
        frame = trajectory_frame(traj, int(np.argmin(np.abs(np.asarray(traj["time"]) - row["time_ps"]))))
        cluster, waters, _ = shell_parts(frame, ion)
        alpha_w, mu_w, _ = model_response(model, waters, ion)
        dft[k] = row["dft"]["delta_mu_eA"], row["dft"]["delta_alpha_A3"]
        for i, factor in enumerate(factors):
            for j, a in enumerate(thole_values):
                alpha_c, mu_c, _ = model_response(model, cluster, ion, factor, a)
                model_values[k, i, j] = np.linalg.norm(mu_c - mu_w), isotropic(alpha_c) - isotropic(alpha_w)
    return model_values, dft


def best_thole(model_values: np.ndarray, dft: np.ndarray, thole_values) -> list[float]:
    """Per factor, the scanned ``a`` with the least rms error of Δμ against DFT over the frames."""
    rms = np.sqrt(np.mean((model_values[..., 0] - dft[:, None, None, 0]) ** 2, axis=0))
    return [float(thole_values[j]) for j in np.argmin(rms, axis=1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="JSON files of examples/ion_shell_response.py (with DFT)")
    parser.add_argument("--model", default="forcefields/nacl_gfn2_water113_hardness.pff")
    parser.add_argument("--ion", default="Cl", choices=["Cl", "Na"])
    parser.add_argument("--alpha-factors", type=float, nargs="+", default=[1.0])
    parser.add_argument("--thole-values", type=float, nargs="+", default=[0.39, 0.3, 0.2, 0.15, 0.1, 0.05])
    args = parser.parse_args(argv)
    from polarff.artifact import load_model

    rows = {(r["run"], r["ion"], r["time_ps"]): r for path in args.results for r in json.loads(Path(path).read_text())}
    rows = [r for r in rows.values() if r["ion"] == args.ion and "dft" in r]
    if not rows:
        parser.error(f"no {args.ion} frames with DFT results in {args.results}")
    model = load_model(args.model)
    model_values, dft = scan(model, rows, args.ion, args.alpha_factors, args.thole_values)
    n = len(rows)
    print(f"{args.ion}: {n} frames; DFT Δμ {dft[:, 0].mean():.3f} e·Å, Δα {dft[:, 1].mean():.2f} Å³")
    print(f"{'α factor':>9s} {'a':>5s} {'Δμ model/DFT':>15s} {'Δα model':>9s} {'rms Δμ err':>11s}")
    for i, factor in enumerate(args.alpha_factors):
        for j, a in enumerate(args.thole_values):
            ratio = model_values[:, i, j, 0] / dft[:, 0]
            error = ratio.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
            rms = np.sqrt(np.mean((model_values[:, i, j, 0] - dft[:, 0]) ** 2))
            print(f"{factor:9g} {a:5g} {ratio.mean():7.3f} ± {error:5.3f} {model_values[:, i, j, 1].mean():9.2f} "
                  f"{rms:11.3f}")
    for factor, a in zip(args.alpha_factors, best_thole(model_values, dft, args.thole_values)):
        print(f"α factor {factor:g}: least rms Δμ error at a = {a:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
