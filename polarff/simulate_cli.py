"""``polarff simulate``: MD from a YAML config (System XML or model + PDB), checkpointed and resumable."""

from __future__ import annotations

from polarff.cli import Command, register


class Simulate(Command):
    name = "simulate"
    help = ("run MD (nvt/npt/nve) with a polarff model or an exported System; unwrapped frames, per-frame "
            "charges, dipoles, energies; rerun to resume")

    @staticmethod
    def add_arguments(p):
        p.add_argument("config", help="YAML settings (see examples/simulate.yaml and polarff.simulate.SimulationConfig)")
        p.add_argument("-o", "--output", help="run folder (default: the config's 'output')")
        p.add_argument("--length-ps", type=float, help="production length (ps); raise it to extend a finished run")
        p.add_argument("--threads", type=int, help="CPU threads (overrides the config)")
        p.add_argument("--overwrite", action="store_true", help="delete an existing run in the folder first")
        p.add_argument("--stop-after-chunks", type=int, metavar="K",
                       help="stop after K checkpoint chunks, as if interrupted (rerun to resume)")
        p.add_argument("--quiet", action="store_true", help="no progress output")

    @staticmethod
    def run(args):
        import dataclasses

        from polarff.simulate import SimulationConfig, run_simulation

        config = SimulationConfig.from_yaml(args.config)
        changes = {k: v for k, v in (("length_ps", args.length_ps), ("threads", args.threads),
                                     ("output", args.output)) if v is not None}
        if changes:
            config = dataclasses.replace(config, **changes)
            config.validate(args.config)
        summary = run_simulation(config, config.output, stop_after_chunks=args.stop_after_chunks,
                                 progress=not args.quiet, overwrite=args.overwrite)
        state = "complete" if summary.complete else "stopped before the end (rerun the same command to resume)"
        print(f"{summary.out_dir}: {summary.frames} frames, {summary.steps_done} steps, {state}; "
              f"{summary.ms_per_step:.2f} ms/step")
        return 0


register(Simulate)
