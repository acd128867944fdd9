"""Active learning versus random selection on concentrated NaCl(aq), starting from a dilute-only model.

What it does (every stage resumes where it stopped; outputs are written atomically):

1. ``data``: classical OpenMM sampling (TIP3P + Joung–Cheatham, :func:`polarff.build.sample_ion_frames`) of

   * a *dilute* start set: 1 NaCl pair in 64 waters (0.87 mol/kg), 2 trajectories × ``--dilute-frames/2``;
   * a *concentrated* candidate pool: 3 pairs in 32 waters (5.2 mol/kg), 2 trajectories;
   * a *concentrated* held-out set: 3 pairs in 32 waters, an independent trajectory (other seed);

   all labelled with GFN2-xTB charges and D4 polarizabilities (:func:`polarff.label.label_file`).
   The pool is labelled once up front and used as a label cache (an "oracle"): both strategies pay the
   same labelling budget (frames added to training), the cache only avoids labelling a frame twice.
2. ``run``: :func:`polarff.active.compare_strategies`: a model trained on the dilute set, then
   ``--rounds`` rounds of ``--per-round`` frames chosen from the pool by uncertainty + diversity
   (active) or uniformly at random (random), each followed by a warm-start retraining with the same seed;
   charge error on the held-out set after every round, for each of ``--seeds``.
3. Writes ``comparison.csv``, ``comparison.md`` and the plot ``active_vs_random.png`` into ``--out``/runs.
4. With ``--mixed N``: the same comparison with a heterogeneous pool, the concentrated pool plus N more
   dilute frames (other seeds), in ``--out``/runs_mixed.

Usage::

    OMP_NUM_THREADS=1 python examples/active_learning.py --out build/active-demo
    # smaller and faster (what the test runs):
    python examples/active_learning.py --out /tmp/al --quick
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def sample_and_label(path: Path, n_pairs: int, n_waters: int, n_frames: int, seeds: list[int],
                     interval_ps: float, equilibration_ps: float) -> Path:
    """Sample NaCl(aq) frames (one trajectory per seed) and label them; resumable. Returns the labelled file."""
    from polarff.build import sample_ion_frames
    from polarff.io import write_frames
    from polarff.label import label_file

    raw = path.with_name(path.stem + "_unlabelled.xyz")
    if not raw.exists():
        frames = []
        per_seed = [n_frames // len(seeds) + (k < n_frames % len(seeds)) for k in range(len(seeds))]
        for seed, count in zip(seeds, per_seed):
            frames += sample_ion_frames("NaCl", n_pairs, n_waters, count, seed, equilibration_ps=equilibration_ps,
                                        interval_ps=interval_ps, progress=True)
        write_frames(raw, frames)
    label_file(raw, path, "gfn2", "d4", resume=True, progress=True)
    return path


def prepare_data(out: Path, quick: bool, dilute_frames: int, pool_frames: int, heldout_frames: int
                 ) -> dict[str, Path]:
    """Build (or reuse) the dilute, pool and held-out labelled sets."""
    out.mkdir(parents=True, exist_ok=True)
    eq, interval = (2.0, 0.2) if quick else (20.0, 1.0)
    waters_dilute, waters_conc = (16, 24) if quick else (64, 32)  # 16 waters + 2 NaCl: GFN2 SCF can fail
    pairs_conc = 2 if quick else 3
    return {
        "dilute": sample_and_label(out / "dilute.xyz", 1, waters_dilute, dilute_frames, [101, 102], interval, eq),
        "pool": sample_and_label(out / "concentrated_pool.xyz", pairs_conc, waters_conc, pool_frames, [201, 202],
                                 interval, eq),
        "heldout": sample_and_label(out / "concentrated_heldout.xyz", pairs_conc, waters_conc, heldout_frames,
                                    [301], interval, eq),
    }


def prepare_dilute_pool(out: Path, quick: bool, n_frames: int) -> Path:
    """Extra dilute frames (same composition as the start set, other seeds) for the mixed pool."""
    eq, interval = (2.0, 0.2) if quick else (20.0, 1.0)
    return sample_and_label(out / "dilute_pool.xyz", 1, 16 if quick else 64, n_frames, [111, 112], interval, eq)


def fit_config(epochs: int, quick: bool):
    """Training settings: polarff's defaults (5 Å cutoff, 128×128 trunk, 32 classes), or tiny ones for tests."""
    from polarff.model import FitConfig

    if quick:
        return FitConfig(epochs=epochs, eval_every=5, hidden=[16], n_bins=8, cutoff=3.5, n_radial=3, n_angular=1)
    return FitConfig(epochs=epochs, eval_every=10)


def report_diagnostics(runs: Path, seed: int, committee: int, pool) -> dict:
    """Rank correlation of entropy and committee spread with the real errors of the round-0 models on the
    pool (labels known); written to ``diagnostics.json``."""
    import json

    from polarff.active import uncertainty_diagnostics
    from polarff.artifact import load_model

    models = [load_model(runs / f"seed{seed}_initial" / f"model_{k}.pff") for k in range(committee)]
    diag = uncertainty_diagnostics(models, pool)
    (runs / "diagnostics.json").write_text(json.dumps(diag, indent=2))
    for name, values in diag.items():
        print(f"{name:10s} " + "  ".join(f"{k} {v:+.3f}" for k, v in values.items()))
    return diag


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="build/active-demo", help="output folder (default build/active-demo)")
    p.add_argument("--stage", choices=["data", "run", "all"], default="all")
    p.add_argument("--quick", action="store_true", help="tiny boxes and budgets (for tests)")
    p.add_argument("--dilute-frames", type=int, default=20)
    p.add_argument("--pool-frames", type=int, default=40)
    p.add_argument("--heldout-frames", type=int, default=15)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-round", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--committee", type=int, default=3, help="models of the query-by-committee variant")
    p.add_argument("--epochs", type=int, default=150, help="epochs of the initial fit")
    p.add_argument("--retrain-epochs", type=int, default=60, help="epochs of each warm-start retraining")
    p.add_argument("--mixed", type=int, default=0, metavar="N",
                   help="also run with a mixed pool: the concentrated pool plus N more dilute frames")
    p.add_argument("--docs-img", help="also copy the plot here (e.g. docs/img/active_vs_random.png; "
                   "the mixed-pool plot goes beside it with suffix _mixed)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.quick:
        args.dilute_frames, args.pool_frames, args.heldout_frames = 4, 6, 3
        args.rounds, args.per_round, args.seeds, args.committee = 2, 1, [0], 2
        args.epochs, args.retrain_epochs = 10, 5
    paths = prepare_data(out, args.quick, args.dilute_frames, args.pool_frames, args.heldout_frames)
    if args.mixed:
        paths["dilute_pool"] = prepare_dilute_pool(out, args.quick, args.mixed)
    if args.stage == "data":
        return 0

    from polarff.active import compare_strategies
    from polarff.io import read_frames

    cfg = fit_config(args.epochs, args.quick)
    variants = {"active": {}, "committee": {"committee": args.committee, "entropy_weight": 0.0}}
    result = compare_strategies(read_frames(paths["dilute"]), read_frames(paths["pool"]),
                                read_frames(paths["heldout"]), out / "runs", cfg, rounds=args.rounds,
                                per_round=args.per_round, seeds=args.seeds, retrain_epochs=args.retrain_epochs,
                                variants=variants)
    print("concentrated pool:\n" + result.markdown)
    report_diagnostics(out / "runs", args.seeds[0], args.committee, read_frames(paths["pool"]))
    plots = [(result.plot_path, args.docs_img)]
    if args.mixed:
        pool = read_frames(paths["pool"]) + read_frames(paths["dilute_pool"])
        mixed = compare_strategies(read_frames(paths["dilute"]), pool, read_frames(paths["heldout"]),
                                   out / "runs_mixed", cfg, rounds=args.rounds, per_round=args.per_round,
                                   seeds=args.seeds, retrain_epochs=args.retrain_epochs, variants=variants)
        print(f"mixed pool (concentrated + {args.mixed} dilute):\n" + mixed.markdown)
        if args.docs_img:
            stem, ext = os.path.splitext(args.docs_img)
            plots.append((mixed.plot_path, f"{stem}_mixed{ext}"))
    if args.docs_img:
        import shutil

        for source, target in plots:
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            shutil.copyfile(source, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
