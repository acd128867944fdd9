"""polarff against TNEP on the GPUMD water dipole and polarizability test sets (docs/tnep-water.md).

Trains the models listed in a YAML file (default ``examples/tnep_water.yaml``) on the GPUMD training
files, then evaluates them side by side with the TNEP models (calorine on CPU, ``nep.txt`` beside each
test file) on the test files, in the same run and on the same frames::

    OMP_NUM_THREADS=2 .venv/bin/python examples/tnep_water.py --out build/tnep-water --plots docs/img

Writes ``<out>/<model>.pff``, ``<out>/<model>-report.json``, ``<out>/comparison.json`` and
``<out>/comparison.md``; parity plots go to ``--plots``. ``--skip-fit`` re-evaluates existing models.
The test files are read only after training has finished.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tnep-water"
DEFAULT_CONFIG = Path(__file__).resolve().with_suffix(".yaml")
KINDS = ("dipole", "polarizability")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA),
                   help="directory with dipole/ and polarizability/ (train.xyz, test.xyz, nep.txt)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML with a 'models' mapping")
    p.add_argument("--out", default="build/tnep-water", help="output directory")
    p.add_argument("--plots", help="directory for the parity plots (default: <out>)")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats, best kept (default 3)")
    p.add_argument("--skip-fit", action="store_true", help="evaluate the models already in --out")
    return p.parse_args(argv)


def read_plan(config_path: str) -> dict[str, tuple[list[str], object]]:
    """{model name: (training kinds, TNEPFitConfig)} from the YAML file."""
    from polarff.errors import ConfigError
    from polarff.fileio import read_yaml_mapping
    from polarff.tnep_fit import TNEPFitConfig

    options = read_yaml_mapping(config_path)
    models = options.get("models")
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"{config_path}: expected a non-empty 'models' mapping")
    plan = {}
    for name, entry in models.items():
        train = list((entry or {}).get("train") or [])
        if not train or set(train) - set(KINDS):
            raise ConfigError(f"{config_path}: models.{name}.train: expected some of {list(KINDS)}, found {train}")
        plan[name] = (train, TNEPFitConfig.from_dict(entry.get("config") or {}, source=f"{config_path}: {name}"))
    return plan


def main(argv: list[str] | None = None) -> int:
    from polarff.fileio import write_json, write_text
    from polarff.tnep_fit import eval_tnep, fit_tnep, format_comparison, parity_plots

    args = parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    plan = read_plan(args.config)
    out.mkdir(parents=True, exist_ok=True)
    model_paths = []
    for name, (kinds, config) in plan.items():
        path = out / f"{name}.pff"
        model_paths.append(str(path))
        if args.skip_fit:
            continue
        files = {kind: [data / kind / "train.xyz"] if kind in kinds else [] for kind in KINDS}
        start = time.perf_counter()
        _, report = fit_tnep(files["dipole"], files["polarizability"], config, out_path=path)
        write_json(out / f"{name}-report.json", report)
        print(f"[{name}] trained in {time.perf_counter() - start:.0f} s; validation RMSE "
              + ", ".join(f"{k} {v:.4f}" for k, v in report["validation"].items()), flush=True)
    test_files = [str(data / kind / "test.xyz") for kind in KINDS if (data / kind / "test.xyz").exists()]
    rows = eval_tnep(model_paths, test_files, repeats=args.repeats)
    table = format_comparison(rows)
    print(table)
    environment = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count(),
                   "load_average": os.getloadavg(), "command": " ".join([sys.executable] + sys.argv)}
    write_json(out / "comparison.json", {"rows": [r.summary() for r in rows], "environment": environment})
    write_text(out / "comparison.md", format_comparison(rows, markdown=True) + "\n")
    for path in parity_plots(rows, args.plots or out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
