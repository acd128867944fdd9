"""The ``polarff`` command line: thin wrappers over the public API.

One small class per subcommand; heavy imports happen inside ``run`` so ``polarff --help`` is instant.
Errors that polarff raises on purpose print as one line; ``-T`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from polarff.errors import ConfigError, PolarffError


class Command:
    """A subcommand: ``name``, one-line ``help``, ``add_arguments`` and ``run``."""

    name = ""
    help = ""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        pass

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        raise NotImplementedError


class Build(Command):
    name = "build"
    help = "sample solvated ion boxes (NaCl, KCl, LiCl in rigid water) with a short classical OpenMM run"

    @staticmethod
    def add_arguments(p):
        p.add_argument("-o", "--output", required=True, help="output extxyz file (written atomically)")
        p.add_argument("--ion", default="NaCl", choices=["NaCl", "KCl", "LiCl"], help="salt (default NaCl)")
        p.add_argument("--waters", type=int, default=64, help="water molecules per box (default 64)")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--pairs", type=int, nargs="+", help="ion pairs per box, one box per value")
        g.add_argument("--molality", type=float, nargs="+", help="molalities (mol/kg), rounded to whole pairs")
        p.add_argument("--frames", type=int, default=10, help="frames per box (default 10)")
        p.add_argument("--equilibration-ps", type=float, default=20.0, help="equilibration time (ps, default 20)")
        p.add_argument("--interval-ps", type=float, default=0.5, help="time between frames (ps, default 0.5)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        p.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads (default 1)")

    @staticmethod
    def run(args):
        from polarff.build import molality_to_pairs, sample_ion_dataset

        pairs = args.pairs or [molality_to_pairs(m, args.waters) for m in (args.molality or [1.0])]
        n = sample_ion_dataset(args.output, args.ion, pairs, args.waters, args.frames, args.seed,
                               args.equilibration_ps, args.interval_ps, threads=args.threads)
        print(f"wrote {n} frames to {args.output}")
        return 0


class Label(Command):
    name = "label"
    help = "label frames with GFN2-xTB charges (tblite) and D4/hydrated-ion polarizabilities; resumable"

    @staticmethod
    def add_arguments(p):
        p.add_argument("input", help="extxyz file with frames to label")
        p.add_argument("-o", "--output", required=True, help="labelled extxyz (rewritten atomically as it goes)")
        p.add_argument("--charges", default="gfn2", choices=["gfn2", "none"], help="charge method")
        p.add_argument("--polarizabilities", default="d4-ions", choices=["d4-ions", "d4", "none"],
                       help="polarizability method: d4-ions (default; D4 for molecules, hydrated-ion literature "
                            "values for monatomic ions, since D4 overestimates cations 3-150x) or plain d4")
        p.add_argument("--no-resume", action="store_true", help="start over instead of keeping labelled frames")
        p.add_argument("--max-frames", type=int, help="stop after labelling N more frames (rerun to continue)")

    @staticmethod
    def run(args):
        from polarff.label import label_file

        n = label_file(args.input, args.output, None if args.charges == "none" else args.charges,
                       None if args.polarizabilities == "none" else args.polarizabilities,
                       resume=not args.no_resume, max_frames=args.max_frames)
        print(f"{args.output}: {n} labelled frames")
        return 0


class Fit(Command):
    name = "fit"
    help = "train a classifier on labelled frames and write a .pff model"

    @staticmethod
    def add_arguments(p):
        p.add_argument("data", nargs="*", help="labelled extxyz file(s); default: the embedded NaCl(aq) set")
        p.add_argument("-o", "--output", required=True, help="model file to write (.pff)")
        p.add_argument("--config", help="YAML file with FitConfig options (see polarff.model.FitConfig)")
        p.add_argument("--epochs", type=int, help="training epochs")
        p.add_argument("--seed", type=int, help="seed of split, initialisation and batch order")
        p.add_argument("--n-bins", type=int, help="classes per species and target")
        p.add_argument("--hidden", help="trunk widths, comma separated (e.g. 128,128)")
        p.add_argument("--cutoff", type=float, help="descriptor cutoff (Å)")
        p.add_argument("--report", help="write the training report (JSON) here")
        p.add_argument("--charge-calibration", metavar="JSON",
                       help="scale the charge labels first with the factors of this calibration "
                            "(polarff calibrate-charges; e.g. the shipped "
                            "polarff/data/charge_calibration_b3lyp.json)")

    @staticmethod
    def run(args):
        from polarff.fileio import write_json
        from polarff.model import fit

        frames = _load_frames(args.data)
        if args.charge_calibration:
            from polarff.esp import ChargeCalibration, apply_charge_scales

            calib = ChargeCalibration.load(args.charge_calibration)
            frames = apply_charge_scales(frames, calib.scales, source=calib.source)
        cfg = _fit_config(args)
        model, report = fit(frames, cfg, out_path=args.output)
        print(f"wrote {args.output} (best epoch {report['best_epoch']}, "
              f"{report['seconds']['train']:.0f} s training)")
        if "test" in report:
            print(format_metrics(report["test"], "test split"))
        if args.report:
            write_json(args.report, report)
        return 0


class CalibrateCharges(Command):
    name = "calibrate-charges"
    help = "DFT ESP charges (pyscf) of small clusters → factors that scale GFN2-xTB charge labels"

    @staticmethod
    def add_arguments(p):
        p.add_argument("frames", nargs="*", help="periodic frames to cut ion/water clusters from (first frame used)")
        p.add_argument("-o", "--output", required=True, help="calibration JSON (resumable)")
        p.add_argument("--max-waters", type=int, default=3, help="waters around each ion (default 3)")
        p.add_argument("--xc", default="b3lyp")
        p.add_argument("--basis", default="def2-svpd")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--water-target", default="esp", choices=["esp", "dipole"],
                       help="water factor from the monomer's ESP charges (default) or its DFT dipole moment")
        p.add_argument("--water-factor", type=float, metavar="S",
                       help="use this water factor instead of fitting one (recorded as 'fixed'); "
                            "the ion factors are still fitted")
        p.add_argument("--apply", help="labelled data set whose GFN2 charges to scale")
        p.add_argument("--scaled", help="where to write the scaled data set (with --apply)")

    @staticmethod
    def run(args):
        from polarff.clusters import calibration_clusters
        from polarff.esp import apply_charge_scales, calibrate_charges
        from polarff.io import read_frames, write_frames

        if args.apply and not args.scaled:
            raise ConfigError("--apply needs --scaled OUTPUT.xyz")
        if args.water_factor is not None and args.water_target != "esp":
            raise ConfigError("--water-factor fixes the water factor; it cannot be combined with --water-target")
        frames = [f for path in args.frames for f in read_frames(path)[:1]]
        calib = calibrate_charges(calibration_clusters(frames, args.max_waters), args.output, xc=args.xc,
                                  basis=args.basis, threads=args.threads,
                                  water_target="fixed" if args.water_factor is not None else args.water_target,
                                  water_factor=args.water_factor)
        for row in calib.summary():
            print(f"{row['name']:12s} {row['species']:2s}  q GFN2 {row['gfn2']:+.3f}  ESP {row['esp']:+.3f}  "
                  f"scaled GFN2 {row.get('gfn2_scaled', float('nan')):+.3f} e")
        print("scale GFN2 → DFT: " + "  ".join(f"{s} {v:.3f}" for s, v in sorted(calib.scales.items())))
        if args.apply:
            scaled = apply_charge_scales(read_frames(args.apply), calib.scales, source=calib.source)
            write_frames(args.scaled, scaled)
            print(f"wrote {len(scaled)} frames with scaled charges to {args.scaled}")
        return 0


class Eval(Command):
    name = "eval"
    help = ("evaluate a model on labelled frames: accuracy, MAE/RMSE per species, conservation; on TNEP "
            "dipole/polarizability files, RMSE side by side with the TNEP model (calorine) and ms/frame")

    @staticmethod
    def add_arguments(p):
        p.add_argument("model", help="model file (.pff)")
        p.add_argument("data", nargs="*", help="labelled extxyz file(s); default: the embedded set")
        p.add_argument("--split", default="all", choices=["all", "train", "validation", "test"],
                       help="evaluate only this split of the model's training data (same files, same order)")
        p.add_argument("-o", "--output", help="write frames with PRED_charges / PRED_polarizabilities / "
                       "PRED_entropy to this extxyz")
        p.add_argument("--json", help="write the metrics as JSON here")

    @staticmethod
    def run(args):
        import numpy as np

        from polarff.artifact import load_model
        from polarff.fileio import write_json
        from polarff.model import predict, prepare, summarize

        frames = _load_frames(args.data)
        if not any("charges" in f.labels for f in frames):
            from polarff.tnep_fit import eval_tnep, format_comparison, frame_kinds

            if frame_kinds(frames):  # TNEP-style targets (dipoles / polarizabilities): side by side with TNEP
                rows = eval_tnep(args.model, args.data or [embedded_data_path()])
                print(format_comparison(rows))
                if args.json:
                    write_json(args.json, [r.summary() for r in rows])
                return 0
        model = load_model(args.model)
        if args.split != "all":
            split = model.card.get("split", {}).get(args.split)
            if split is None:
                raise ConfigError(f"{args.model}: the model card records no '{args.split}' split")
            if max(split, default=-1) >= len(frames):
                raise ConfigError(f"{args.model}: split '{args.split}' indexes {max(split) + 1} frames, "
                                  f"the data given has {len(frames)}: pass the training files")
            frames = [frames[i] for i in split]
        frames = _labels_as_trained(model, frames)
        pred = predict(model, frames)
        metrics = summarize(model, prepare(model, frames), pred)
        print(format_metrics(metrics, f"{len(frames)} frames ({args.split})"))
        if args.output:
            from polarff.io import write_frames

            extra, start = [], 0
            for f in frames:
                sl = slice(start, start + f.n_atoms)
                extra.append({"PRED_charges": pred["charges"][sl], "PRED_polarizabilities": pred["polarizabilities"][sl],
                              "PRED_entropy": pred["entropy"][sl]})
                start += f.n_atoms
            write_frames(args.output, frames, extra_arrays=extra)
            print(f"wrote predictions to {args.output}")
        if args.json:
            write_json(args.json, metrics)
        return 0 if np.isfinite(metrics.get("conservation_error_max", 0.0)) else 1


class Info(Command):
    name = "info"
    help = "describe a .pff model (model card, without loading TensorFlow) or an exported system XML"

    @staticmethod
    def add_arguments(p):
        p.add_argument("path", help="model (.pff) or exported OpenMM system (.xml)")
        p.add_argument("--json", action="store_true", help="print the whole card as JSON")

    @staticmethod
    def run(args):
        if args.path.endswith(".xml"):
            from polarff.openmm.export import describe_system

            print(describe_system(args.path))
            return 0
        from polarff.artifact import read_card, read_thole

        card = read_card(args.path)
        if args.json:
            print(json.dumps(card, indent=2))
            return 0
        print(f"polarff model {args.path}")
        print(f"  species:        {', '.join(card['species'])}")
        print(f"  units:          {', '.join(f'{k}: {v}' for k, v in card['units'].items())}")
        print(f"  seed:           {card['seed']}")
        print(f"  training data:  sha256 {card['training_data_sha256'][:16]}…  frames {card['n_frames']}")
        print(f"  versions:       {', '.join(f'{k} {v}' for k, v in card['versions'].items())}")
        for key, scaling in card.get("label_scaling", {}).items():
            print(f"  {key + ':':15s} {scaling['factors']}  ({scaling['source']})")
        if card.get("fixed_terms"):
            print(f"  fixed terms:    {card['fixed_terms']}")
        if card.get("electronegativity"):
            term = card["electronegativity"]
            chi = ", ".join(f"{s} {v:.1f}" for s, v in term["chi_kj_mol_e"].items())
            hardness = ", ".join(f"{s} {v:.1f}" for s, v in term.get("hardness_kj_mol_e2", {}).items())
            hardness = f", J (kJ/mol/e²) {hardness}" if hardness else ""
            print(f"  electronegativity term: χ (kJ/mol/e) {chi}{hardness}  (fitted on {term['fitted_on']})")
        thole = read_thole(args.path)
        if thole:
            values = ", ".join(f"{s} {a:g}" for s, a in thole["a"].items())
            print(f"  Thole a:        {values} (other species 0.39; pairs min(a_i, a_j))  ({thole.get('basis', '')})")
        if card.get("charge_constraint", "total") != "total":
            print(f"  charges:        {card['charge_constraint']}: each molecule sums to its formal charge (no "
                  "charge transfer between molecules; training used the total charge only)")
        if card.get("variant"):
            print(f"  variant:        {card['variant']}")
        if card.get("induction_field") or card.get("fixed_terms") or card.get("electronegativity"):
            # the parts set from MD (fixed terms, electronegativity term) depend on the polarising field
            print("  MD-set parts:   with the polarising field "
                  + {"full": "summed in full (Ewald)"}.get(
                      card.get("induction_field"), "switched off at the cutoff (before 2026-11-22; polarff now sums "
                                                   "it in full, docs/induction-field.md)"))
        for split, m in card.get("metrics", {}).items():
            print(format_metrics(m, split, indent="  "))
        return 0


def format_metrics(m: dict, title: str, indent: str = "") -> str:
    """Human-readable table of :func:`polarff.model.summarize` output."""
    lines = [f"{indent}{title}:"]
    for short, unit in (("charge", "e"), ("polarizability", "Å^3")):
        if f"{short}_mae" not in m:
            continue
        lines.append(f"{indent}  {short}: MAE {m[f'{short}_mae']:.4f} {unit}  RMSE {m[f'{short}_rmse']:.4f} {unit}  "
                     f"class accuracy {m[f'{short}_accuracy']:.3f}")
        for sp, v in m.get(f"{short}_per_species", {}).items():
            lines.append(f"{indent}    {sp:>2}: MAE {v['mae']:.4f}  RMSE {v['rmse']:.4f}  accuracy {v['accuracy']:.3f}"
                         f"  (n={v['n']})")
    if "conservation_error_max" in m:
        lines.append(f"{indent}  charge conservation: max |Σq − Q| = {m['conservation_error_max']:.2e} e "
                     f"(before neutralisation {m['conservation_error_raw_max']:.2e} e)")
    return "\n".join(lines)


def embedded_data_path() -> str:
    """Path of the embedded default data set (NaCl(aq), GFN2-xTB/D4 labels)."""
    return os.path.join(os.path.dirname(__file__), "data", "nacl_aq.xyz")


def _load_frames(paths: list[str]):
    from polarff.io import read_frames

    paths = paths or [embedded_data_path()]
    frames = []
    for p in paths:
        frames += read_frames(p)
    return frames


def _labels_as_trained(model, frames):
    """Frames with the charge calibration of the model's training labels applied, if the model card has
    one and the frames are unscaled (otherwise a calibrated model would be scored against raw labels)."""
    scaling = model.card.get("label_scaling", {}).get("charge_scale")
    if not scaling or all("charge_scale" in f.info for f in frames):
        return frames
    from polarff.esp import apply_charge_scales, parse_scales

    print(f"charge labels scaled as in training: {scaling['factors']} ({scaling['source']})")
    return apply_charge_scales(frames, parse_scales(scaling["factors"]), source=scaling["source"])


def _fit_config(args):
    from polarff.model import FitConfig

    from polarff.fileio import read_yaml_mapping

    options: dict = read_yaml_mapping(args.config) if args.config else {}
    for key in ("epochs", "seed", "n_bins", "cutoff"):
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    if getattr(args, "hidden", None):
        try:
            options["hidden"] = [int(h) for h in args.hidden.split(",")]
        except ValueError:
            raise ConfigError(f"--hidden: expected comma-separated integers, found {args.hidden!r}") from None
    return FitConfig.from_dict(options, source=args.config or "options")


COMMANDS: list[type[Command]] = [Build, Label, CalibrateCharges, Fit, Eval, Info]


def register(command: type[Command]) -> None:
    """Add a subcommand (used by modules that provide export / simulate / benchmark / active)."""
    if all(c.name != command.name for c in COMMANDS):
        COMMANDS.append(command)


def build_parser() -> argparse.ArgumentParser:
    _load_optional_commands()
    parser = argparse.ArgumentParser(
        prog="polarff",
        description="Polarizable force fields from neural-network classifiers, run in OpenMM. "
                    "Typical flow: build → label → fit → eval → export → simulate → benchmark.")
    parser.add_argument("-T", "--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def _load_optional_commands() -> None:
    """Import the command modules of later stages (each registers its subcommands)."""
    import importlib

    for mod in ("polarff.openmm.commands", "polarff.simulate_cli", "polarff.benchmark", "polarff.active",
                "polarff.tnep_fit", "polarff.electronegativity"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (PolarffError, FileNotFoundError) as exc:
        if args.traceback:
            raise
        print(f"polarff: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("polarff: interrupted (outputs written so far are complete; rerun to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # run the imported module's main so later-stage commands register in one place
    from polarff.cli import main as _main

    sys.exit(_main())
