"""Net charge around each ion, Q(R), in finished polarff runs and in labelled reference frames.

Q(R) = q_ion + the net charges of the water molecules whose centroid lies within R of the ion (minimum image;
other ions are left out), from :func:`polarff.analysis.structure.ion_environment_charge`. In the physical
electrolyte Q(R) reaches the oxidation number ±1 once R encloses the charge the ion exchanged with its
neighbours, and each ion then carries exactly ±1 through the liquid (F. Grasselli and S. Baroni, Nat. Phys.
15, 967 (2019)). Where a model's Q(R) stays short of ±1, the conductivity computed with the model's own
charges is lower than the one with formal charges by roughly Q², and only the latter is the physical
conductivity of the model's ion dynamics (docs/charge-quantization.md).

Examples::

    python examples/ion_environment_charge.py build/benchmark-water111-ionchi/runs/polarff-nacl
    python examples/ion_environment_charge.py --labels polarff/data/nacl_aq.xyz --n-pairs 1
"""

from __future__ import annotations

import argparse

import numpy as np

from polarff.analysis.structure import ion_environment_charge

#: Radii (nm) per ion: its first shell (as in the benchmark), then 0.45 and 0.60 nm.
RADII_NM = {"Na": (0.32, 0.45, 0.60), "Cl": (0.38, 0.45, 0.60)}


def run_charges(run_dir: str, n_frames: int = 3000) -> dict[str, list[tuple[float, float]]]:
    """Q(R) (mean, standard error over 5 blocks) of the first Na and Cl of a run, at :data:`RADII_NM`."""
    from polarff.simulate import load_trajectory

    traj = load_trajectory(run_dir)
    symbols = np.asarray(traj["symbols"]).astype(str)
    stride = max(1, len(traj["positions"]) // n_frames)
    out = {}
    for species, radii in RADII_NM.items():
        ions = np.flatnonzero(symbols == species)
        if len(ions):
            out[species] = ion_environment_charge(traj["positions"][::stride], traj["box"][::stride],
                                                  traj["charges"][::stride], traj["residue_index"], int(ions[0]),
                                                  radii)
    return out


def label_charges(path: str, n_pairs: int | None = None) -> dict[str, list[tuple[float, float]]]:
    """Q(R) over every ion of every periodic frame of a labelled file (mean, standard error over ions).

    Frames are read with :func:`polarff.io.read_frames` (charges from ``REF_charges`` or ``charges``),
    molecules found and made whole with :func:`polarff.data.molecules` and
    :func:`polarff.data.unwrap_molecules`.
    With ``n_pairs``, only frames whose ``n_pairs`` key (as ``polarff build`` writes it) has that value are
    used."""
    from polarff.data import molecules, unwrap_molecules
    from polarff.errors import InputError
    from polarff.io import read_frames

    values: dict[str, list[list[float]]] = {s: [] for s in RADII_NM}
    for k, frame in enumerate(read_frames(path)):
        if "charges" not in frame.labels:
            raise InputError("no reference charges", file=path, field=f"frame {k}: charges",
                             expected="per-atom charges (REF_charges or charges)",
                             found=f"labels {sorted(frame.labels)}")
        if not frame.pbc.all() or (n_pairs is not None and frame.info.get("n_pairs") != n_pairs):
            continue
        symbols = np.asarray(frame.symbols)
        edges = np.diag(frame.cell) / 10.0
        mol = molecules(frame)
        x = unwrap_molecules(frame, mol)[None] / 10.0
        for species, radii in RADII_NM.items():
            for ion in np.flatnonzero(symbols == species):
                radii_here = [min(r, 0.49 * edges.min()) for r in radii]
                charge = ion_environment_charge(x, np.diag(edges)[None], frame.labels["charges"][None], mol,
                                                int(ion), radii_here, n_blocks=1)
                values[species].append([c for c, _ in charge])
    out = {}
    for species, rows in values.items():
        if rows:
            rows_array = np.array(rows)
            out[species] = list(zip(rows_array.mean(axis=0),
                                    rows_array.std(axis=0, ddof=1) / np.sqrt(len(rows_array))))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", help="finished `polarff simulate` run folders (with per-frame charges)")
    parser.add_argument("--labels", nargs="*", default=[], help="labelled extxyz files (periodic frames)")
    parser.add_argument("--n-pairs", type=int, default=None,
                        help="use only --labels frames with this many ion pairs (their n_pairs key)")
    args = parser.parse_args(argv)
    header = " | ".join(f"{s} R = {r:.2f} nm" for s, radii in RADII_NM.items() for r in radii)
    print(f"| source | {header} |")
    print("|---|" + "---|" * sum(len(r) for r in RADII_NM.values()))
    sources = [(run, run_charges(run)) for run in args.runs]
    suffix = f" ({args.n_pairs} pair frames)" if args.n_pairs is not None else ""
    sources += [(path + suffix, label_charges(path, args.n_pairs)) for path in args.labels]
    for name, charges in sources:
        cells = [f"{value:+.3f} ± {error:.3f}" if np.isfinite(error) else f"{value:+.3f}"
                 for s in RADII_NM for value, error in charges.get(s, [(np.nan, np.nan)] * len(RADII_NM[s]))]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
