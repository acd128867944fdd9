"""Active learning versus random selection on concentrated NaCl(aq), starting from a dilute-only model.

What it does (every stage resumes where it stopped; outputs are written atomically):

1. ``data``: classical OpenMM sampling (TIP3P + Joung–Cheatham, :func:`polarff.build.sample_ion_frames`) of

   * a *dilute* start set: 1 NaCl pair in 64 waters (0.87 mol/kg), 2 trajectories × ``--dilute-frames/2``;
   * a *concentrated* candidate pool: 3 pairs in 32 waters (5.2 mol/kg), 2 trajectories;
   * a *concentrated* held-out set: 3 pairs in 32 waters, an independent trajectory (other seed);

   all labelled with GFN2-xTB charges and D4 polarizabilities (:func:`polarff.label.label_file`).
   The pool is labelled once up front and used as a label cache (an "oracle"): both strategies pay the
   same labelling budget (frames added to training), the cache only avoids labelling a frame twice.
2. ``run``: :func:`polarff.active.compare_strategies`: models trained on the dilute set (one per seed and
   committee member, shared by all pools, in ``--out``/runs), then ``--rounds`` rounds of ``--per-round``
   frames chosen from a pool by entropy + diversity (``active``), by committee disagreement + diversity
   (``committee``, ``--committee`` models) or uniformly at random (``random``), each followed by a
   warm-start retraining with the same seed; charge error on the held-out set after every round, for each
   of ``--seeds``; strategies compared seed by seed (paired difference ± standard error, t-test).
3. Writes ``comparison.csv``, ``comparison_seeds.csv``, ``comparison.md``, ``composition.md`` (which
   compositions each strategy labelled) and the plot ``active_vs_random.png`` into the pool's folder.

Pools (``--out``/runs, runs_mixed, runs_spanning):

* *concentrated*: the concentrated pool only;
* *mixed* (``--mixed N``): the concentrated pool plus N more dilute frames (1 NaCl in 64 waters, other seeds);
* *spanning* (``--spanning STRIDE``): the mixed pool plus every STRIDE-th frame of each composition of the
  embedded, already labelled ``polarff/data/nacl_aq.xyz`` (1, 2, 3 NaCl in 64 waters; ion α relabelled
  with plain D4, see :func:`prepare_spanning_extra`), as MD candidates drawn at varied concentrations are.

Usage::

    OMP_NUM_THREADS=1 python examples/active_learning.py --out build/active-demo --mixed 16 --spanning 3
    # smaller and faster (what the test runs):
    python examples/active_learning.py --out /tmp/al --quick
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
from collections import Counter
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


def prepare_spanning_extra(out: Path, stride: int) -> Path:
    """Every ``stride``-th frame of each composition of the embedded data set ``polarff/data/nacl_aq.xyz``
    (1, 2, 3 NaCl in 64 waters: 0.87, 1.7, 2.6 mol/kg; classical MD, seed 7), already labelled with
    GFN2-xTB charges by the same tblite 0.8.0 settings as this demo (relabelling frame 150 reproduces them
    to 5e-9 e). Their ion polarizabilities (Tessman–Kahn–Shockley values there) are replaced by plain D4,
    as in the rest of this demo, so that every training label comes from one method. No GFN2 call."""
    from polarff.io import read_frames, write_frames
    from polarff.label import d4_polarizabilities, label_method

    path = out / f"spanning_extra_stride{stride}.xyz"
    if path.exists():
        return path
    source = Path(__file__).resolve().parents[1] / "polarff" / "data" / "nacl_aq.xyz"
    frames = read_frames(source)
    chosen = []
    for n_pairs in sorted({int(f.info["n_pairs"]) for f in frames}):
        for frame in [f for f in frames if int(f.info["n_pairs"]) == n_pairs][::stride]:
            frame = copy.deepcopy(frame)
            frame.labels["polarizabilities"] = d4_polarizabilities(frame)
            frame.info["label_method"] = (frame.info["label_method"].split(";")[0] + "; "
                                          + label_method(None, "d4"))
            frame.info["origin"] = f"polarff/data/nacl_aq.xyz frame {frame.info.pop('index')}"
            frame.info.pop("source", None)
            chosen.append(frame)
    write_frames(path, chosen)
    return path


def report_diagnostics(runs: Path, seed: int, committee: int, pool, initial_dir: Path) -> dict:
    """Rank correlation of entropy and committee spread with the real errors of the round-0 models on the
    pool (labels known); written to ``runs/diagnostics.json``."""
    import json

    from polarff.active import uncertainty_diagnostics
    from polarff.artifact import load_model

    models = [load_model(initial_dir / f"seed{seed}_initial" / f"model_{k}.pff") for k in range(committee)]
    diag = uncertainty_diagnostics(models, pool)
    (runs / "diagnostics.json").write_text(json.dumps(diag, indent=2))
    for name, values in diag.items():
        print(f"{name:10s} " + "  ".join(f"{k} {v:+.3f}" for k, v in values.items()))
    return diag


def composition_name(frame) -> str:
    return f"{int(frame.info['n_pairs'])} NaCl / {int(frame.info['n_waters'])} H2O"


def report_composition(runs: Path, seeds: list[int], names: list[str], rounds: int, report: Path) -> str:
    """Compositions of the frames each strategy labelled (rounds 1…``rounds``), per seed: a Markdown table
    (cells: count per seed, 'a / b / …'), also written to ``report/composition.md`` and ``composition.json``."""
    import json

    from polarff.io import read_frames

    counts: dict[str, dict[str, list[int]]] = {}
    for name in names:
        per_seed = []
        for seed in seeds:
            selected = [f for r in range(1, rounds + 1)
                        for f in read_frames(runs / f"seed{seed}_{name}" / f"round_{r:03d}" / "selected.xyz")]
            per_seed.append(Counter(composition_name(f) for f in selected))
        keys = sorted({k for c in per_seed for k in c})
        counts[name] = {k: [c.get(k, 0) for c in per_seed] for k in keys}
    columns = sorted({k for c in counts.values() for k in c})
    lines = ["| strategy | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, by_key in counts.items():
        cells = [" / ".join(str(v) for v in by_key.get(k, [0] * len(seeds))) for k in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (report / "composition.json").write_text(json.dumps(counts, indent=2))
    (report / "composition.md").write_text(table + "\n")
    return table


#: Pools compared (name → run folder, plot suffix); see the module docstring.
POOL_FOLDERS = {"concentrated": ("runs", ""), "mixed": ("runs_mixed", "_mixed"),
                "spanning": ("runs_spanning", "_spanning")}


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
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--committee", type=int, default=3, help="models of the query-by-committee variant")
    p.add_argument("--epochs", type=int, default=150, help="epochs of the initial fit")
    p.add_argument("--retrain-epochs", type=int, default=60, help="epochs of each warm-start retraining")
    p.add_argument("--mixed", type=int, default=0, metavar="N",
                   help="also run with a mixed pool: the concentrated pool plus N more dilute frames")
    p.add_argument("--spanning", type=int, default=0, metavar="STRIDE",
                   help="also run with a pool spanning concentrations: the mixed pool plus every STRIDE-th frame "
                   "of each composition of polarff/data/nacl_aq.xyz (1, 2, 3 NaCl in 64 waters)")
    p.add_argument("--pools", nargs="+", choices=list(POOL_FOLDERS),
                   help="run only these pools (default: every pool the data options enable)")
    p.add_argument("--tag", help="write the tables and plots into <pool folder>/TAG (plots copied with suffix "
                   "_TAG), e.g. for a comparison over another set of seeds whose runs share the pool folder")
    p.add_argument("--docs-img", help="also copy the plots here (e.g. docs/img/active_vs_random.png; the "
                   "mixed and spanning pools' plots go beside it with suffixes _mixed and _spanning)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.quick:
        args.dilute_frames, args.pool_frames, args.heldout_frames = 4, 6, 3
        args.rounds, args.per_round, args.seeds, args.committee = 2, 1, [0], 2
        args.epochs, args.retrain_epochs = 10, 5
    paths = prepare_data(out, args.quick, args.dilute_frames, args.pool_frames, args.heldout_frames)
    if args.mixed:
        paths["dilute_pool"] = prepare_dilute_pool(out, args.quick, args.mixed)
    if args.spanning:
        paths["spanning_extra"] = prepare_spanning_extra(out, args.spanning)
    if args.stage == "data":
        return 0

    from polarff.active import compare_strategies
    from polarff.io import read_frames

    frames = {name: read_frames(path) for name, path in paths.items()}
    pools = {"concentrated": frames["pool"]}
    if args.mixed:
        pools["mixed"] = frames["pool"] + frames["dilute_pool"]
    if args.spanning:
        pools["spanning"] = pools.get("mixed", frames["pool"]) + frames["spanning_extra"]
    cfg = fit_config(args.epochs, args.quick)
    variants = {"active": {}, "committee": {"committee": args.committee, "entropy_weight": 0.0}}
    for name, pool in pools.items():
        if args.pools and name not in args.pools:
            continue
        folder, suffix = POOL_FOLDERS[name]
        report = out / folder / args.tag if args.tag else out / folder
        result = compare_strategies(frames["dilute"], pool, frames["heldout"], out / folder, cfg,
                                    rounds=args.rounds, per_round=args.per_round, seeds=args.seeds,
                                    retrain_epochs=args.retrain_epochs, variants=variants,
                                    initial_dir=out / "runs", report_dir=report)
        print(f"{name} pool ({len(pool)} frames), seeds {args.seeds}:\n" + result.markdown)
        report_diagnostics(report, args.seeds[0], args.committee, pool, out / "runs")
        print(report_composition(out / folder, args.seeds, [*variants, "random"], args.rounds, report))
        if args.docs_img:
            stem, ext = os.path.splitext(args.docs_img)
            os.makedirs(os.path.dirname(args.docs_img) or ".", exist_ok=True)
            shutil.copyfile(result.plot_path, f"{stem}{suffix}{'_' + args.tag if args.tag else ''}{ext}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
