"""How much the Einstein–Helfand conductivity of finished runs depends on the lag window of its fit.

``<|ΔM(τ)|²>`` of the collective translational dipole becomes linear in τ only once the ions' correlated
motion has relaxed; the slope fitted over a window that starts too early carries a systematic error, and one
that reaches too far carries more noise. This script refits the formal-charge Einstein–Helfand Λ (±1 on the
ions' positions, 0 on water: ``molar_conductivity_formal`` of ``polarff benchmark``) of every given run with
several lag windows and prints, per window, the mean Λ over the runs, the runs' scatter (sample standard
deviation over the mean: the error of one run) and the paired difference from the first window (mean ± standard
error of the per-run differences, relative to the first window's mean). Paired differences cancel most of the
run-to-run noise, so they show a systematic trend that the scatter of the values themselves would hide.

A run folder is that of ``polarff simulate`` (``build/bench-nh-s7/runs/polarff-nacl``,
``build/replicas/64w1p-s100/run``); every run must hold Na and Cl.

Example (docs/replica-statistics.md)::

    python examples/fit_window_sensitivity.py build/replicas/64w1p-s*/run --windows 2-10 1-5 4-19
"""

from __future__ import annotations

import argparse
import math
from typing import NamedTuple

import numpy as np

from polarff.analysis import einstein_helfand, molar_conductivity, salt_concentration
from polarff.benchmark import FORMAL_ION_CHARGES
from polarff.errors import ConfigError, InputError
from polarff.simulate import load_trajectory


class Window(NamedTuple):
    """A lag window of the Einstein–Helfand fit, ps."""

    start_ps: float
    end_ps: float

    @property
    def label(self) -> str:
        return f"{self.start_ps:g}–{self.end_ps:g} ps"


def parse_window(text: str) -> Window:
    """``"2-10"`` → Window(2, 10); a clear error for anything else."""
    try:
        start, end = (float(part) for part in text.split("-"))
    except ValueError:
        raise ConfigError(f"--windows: expected START-END in ps, e.g. 2-10 (found {text!r})") from None
    if not 0.0 <= start < end:
        raise ConfigError(f"--windows: expected 0 <= START < END (found {text!r})")
    return Window(start, end)


def formal_conductivities(run_dir: str, windows: list[Window], n_blocks: int) -> list[float]:
    """Formal-charge Einstein–Helfand Λ (S cm² mol⁻¹) of one run, one value per lag window.

    Parameters
    ----------
    run_dir : str
        Run folder of ``polarff simulate`` (unwrapped positions, box, symbols, temperature).
    windows : list of Window
        Lag windows of the fit, ps; each must end within a block (``length / n_blocks``).
    n_blocks : int
        Blocks of the run (they set the longest usable lag).

    Returns
    -------
    list of float
        Λ per window, at the salt concentration of the run's mean box volume.
    """
    traj = load_trajectory(run_dir)
    symbols = np.asarray(traj["symbols"]).astype(str)
    charges = np.array([FORMAL_ION_CHARGES.get(s, 0.0) for s in symbols])
    n_cations, n_anions = int(np.sum(charges > 0)), int(np.sum(charges < 0))
    if n_cations == 0 or n_anions == 0:
        raise InputError("the run holds no cation or no anion, so it has no ionic conductivity", file=run_dir,
                         field="symbols", expected="at least one cation and one anion (e.g. Na and Cl)",
                         found=f"{n_cations} cations, {n_anions} anions")
    if not math.isclose(charges.sum(), 0.0, abs_tol=1e-9):
        raise InputError("the formal ion charges do not add up to zero", file=run_dir, field="symbols",
                         expected="a neutral salt", found=f"net charge {charges.sum():+g} e")
    boxes = np.asarray(traj["box"], dtype=np.float64)
    volume = float(np.mean(np.abs(np.linalg.det(boxes))))
    concentration = salt_concentration(min(n_cations, n_anions), volume)
    positions = np.asarray(traj["positions"], dtype=np.float64)
    times = np.asarray(traj["time"], dtype=np.float64)
    temperature = float(traj["temperature_k"])
    return [molar_conductivity(einstein_helfand(positions, times, charges, volume, temperature, n_blocks=n_blocks,
                                                fit_window=(w.start_ps, w.end_ps)).sigma, concentration)
            for w in windows]


def summarize(values: np.ndarray, windows: list[Window]) -> list[dict]:
    """Per window: mean Λ, the runs' relative scatter, and the paired difference from the first window.

    Parameters
    ----------
    values : ndarray, shape (n_runs, n_windows)
        Λ of each run (rows) with each window (columns), S cm² mol⁻¹.
    windows : list of Window
        The windows of the columns.

    Returns
    -------
    list of dict
        ``{"window", "mean", "relative_scatter", "difference", "difference_error"}``; the scatter and the
        difference's error are NaN for one run, the difference is relative to the first window's mean.
    """
    n_runs = values.shape[0]
    reference = values[:, 0]
    rows = []
    for j, window in enumerate(windows):
        column = values[:, j]
        difference = column - reference
        rows.append({
            "window": window.label, "mean": float(column.mean()),
            "relative_scatter": float(column.std(ddof=1) / column.mean()) if n_runs > 1 else float("nan"),
            "difference": float(difference.mean() / reference.mean()),
            "difference_error": (float(difference.std(ddof=1) / math.sqrt(n_runs) / reference.mean())
                                 if n_runs > 1 else float("nan"))})
    return rows


def format_table(rows: list[dict], n_runs: int) -> str:
    """Markdown table of :func:`summarize`."""
    lines = [f"Formal-charge Einstein–Helfand Λ (S cm²/mol) of {n_runs} runs refitted over each lag window; "
             "scatter = the runs' standard deviation / mean (the error of one run); difference = mean of the "
             "per-run differences from the first window ± its standard error, relative to the first window's mean.",
             "", "| lag window | mean Λ | scatter of one run | difference from the first window |",
             "|---|---|---|---|"]
    for j, row in enumerate(rows):
        scatter = "n/a" if math.isnan(row["relative_scatter"]) else f"{100 * row['relative_scatter']:.0f} %"
        if j == 0:
            difference = "reference"
        elif math.isnan(row["difference_error"]):
            difference = f"{100 * row['difference']:+.1f} %"
        else:
            difference = f"{100 * row['difference']:+.1f} % ± {100 * row['difference_error']:.1f} %"
        lines.append(f"| {row['window']} | {row['mean']:.1f} | {scatter} | {difference} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders of polarff simulate (with Na and Cl)")
    parser.add_argument("--windows", nargs="+", default=["2-10", "1-5", "4-19"],
                        help="lag windows START-END in ps; the first is the reference (default 2-10 1-5 4-19; "
                             "2-10 ps is the benchmark's default for 100 ps runs in 5 blocks)")
    parser.add_argument("--blocks", type=int, default=5, help="blocks of each run (set the longest lag)")
    args = parser.parse_args(argv)
    windows = [parse_window(text) for text in args.windows]
    values = np.array([formal_conductivities(run, windows, args.blocks) for run in args.runs])
    print(format_table(summarize(values, windows), len(args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
