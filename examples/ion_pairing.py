"""Ion pairing over time: do like-charge ions aggregate, and does the induction energy follow?

For each run folder (a ``polarff simulate`` output, finished or still running) the frames are cut into
windows of ``--window-ps``; per window the script prints the mean distance from each ion to its nearest
partner ion and the fraction of ions with one in contact (:func:`polarff.analysis.structure.ion_pairing_by_kind`; in brackets the fraction for partners placed at random),
and the mean potential energy and its polarff terms (kJ/mol) over the same window. A contact fraction far
above the random one is aggregation; an induction energy that falls as it forms says what drives it.

Needs at least two ions of a species for the like-ion columns (a box with one ion pair shows only Na–Cl).

Example (docs/ion-pairing.md)::

    python examples/ion_pairing.py build/bench-nh-256-s7/runs/polarff-nacl build/bench-nh-256-s7/runs/formal-nacl
"""

from __future__ import annotations

import argparse

import numpy as np

#: Energy series averaged per window, with their column names.
ENERGY_COLUMNS = {"potential_energy": "E pot", "polarff_permanent_energy": "E perm",
                  "polarff_induction_energy": "E ind"}


def pairing_windows(traj: dict, window_ps: float, stride: int = 10) -> list[dict]:
    """Per time window: its bounds (ps), the ion-pairing statistics per pair type and the mean energies
    (kJ/mol; a polarff term is left out where it is zero throughout, as in a fixed-charge run).

    Parameters
    ----------
    traj : dict
        A trajectory from :func:`polarff.simulate.load_trajectory` (positions nm, time ps).
    window_ps : float
        Window length, ps.
    stride : int
        Every ``stride``-th frame is used (pairing changes over ps, frames come every 10 fs).
    """
    from polarff.analysis.structure import ion_pairing_by_kind
    from polarff.errors import InputError

    symbols = np.asarray(traj["symbols"]).astype(str)
    time = np.asarray(traj["time"], dtype=np.float64)
    if window_ps <= 0 or time[-1] - time[0] < window_ps:
        raise InputError(f"--window-ps must be positive and at most the run's length ({time[-1] - time[0]:.1f} ps), "
                         f"found {window_ps}")
    positions, boxes = np.asarray(traj["positions"]), np.asarray(traj["box"])
    rows = []
    for start in np.arange(time[0], time[-1] - 0.5 * window_ps, window_ps):
        inside = np.flatnonzero((time >= start) & (time < start + window_ps))[::stride]
        row: dict = {"start_ps": float(start), "end_ps": float(min(start + window_ps, time[-1])),
                     "pairing": ion_pairing_by_kind(positions[inside], boxes[inside], symbols)}
        energy_time = np.asarray(traj.get("energy_time", []), dtype=np.float64)
        in_window = (energy_time >= start) & (energy_time < start + window_ps)
        row["energies"] = {key: float(np.asarray(traj[key])[in_window].mean()) for key in ENERGY_COLUMNS
                           if key in traj and in_window.any() and np.any(np.asarray(traj[key]) != 0.0)}
        rows.append(row)
    return rows


def window_table(name: str, rows: list[dict]) -> str:
    """Markdown table of :func:`pairing_windows` rows for one run."""
    kinds = list(rows[0]["pairing"])
    energies = [k for k in ENERGY_COLUMNS if k in rows[0]["energies"]]
    head = (["window (ps)"] + [f"{k} nearest (nm)" for k in kinds] + [f"{k} in contact (random)" for k in kinds]
            + [ENERGY_COLUMNS[k] for k in energies])
    lines = [f"**{name}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        p = row["pairing"]
        cells = ([f"{row['start_ps']:.0f}–{row['end_ps']:.0f}"] + [f"{p[k]['nearest_nm']:.2f}" for k in kinds]
                 + [f"{p[k]['contact_fraction']:.2f} ({p[k]['random_contact_fraction']:.2f})" for k in kinds]
                 + [f"{row['energies'][k]:.0f}" for k in energies])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="polarff simulate run folders")
    parser.add_argument("--window-ps", type=float, default=10.0, help="window length, ps (default 10)")
    args = parser.parse_args(argv)
    from polarff.simulate import load_trajectory

    for run in args.runs:
        print(window_table(run, pairing_windows(load_trajectory(run), args.window_ps)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
