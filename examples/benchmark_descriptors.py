"""Descriptor throughput: atom-environments per second for 192-atom water frames (numpy and torch twin).

Usage::

    OMP_NUM_THREADS=2 python examples/benchmark_descriptors.py [--frames PATH] [--cutoff 5.0]

Without ``--frames`` it uses the TNEP water test frames from ../shared/data when present, else
64-water boxes built in code. Prints a markdown table (recorded in docs/descriptors.md).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def water_frames(n: int = 20):
    from polarff.build import build_ion_box
    from polarff.data import Frame

    frames = []
    for seed in range(n):
        topology, pos_nm, box_nm = build_ion_box("NaCl", 1, 63, seed)
        symbols = [a.element.symbol for a in topology.atoms()]
        frames.append(Frame(symbols, pos_nm * 10, cell=np.eye(3) * box_nm * 10, pbc=[True] * 3))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", help="extxyz file with frames (default: TNEP water test set if present)")
    parser.add_argument("--cutoff", type=float, default=5.0, help="descriptor cutoff, Å (default 5.0)")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats; the best is reported")
    args = parser.parse_args()

    import torch

    from polarff.descriptors import DescriptorConfig, compute_descriptors
    from polarff.io import read_frames
    from polarff.runtime.descriptors import TorchDescriptors

    shared = Path(__file__).resolve().parents[2] / "shared/data/tnep-water/dipole/test.xyz"
    path = args.frames or (str(shared) if shared.exists() else None)
    frames = read_frames(path)[:40] if path else water_frames()
    source = path or "64-water boxes built with polarff.build"
    cfg = DescriptorConfig(["H", "O", "Na", "Cl"], cutoff=args.cutoff)
    n_atoms = sum(f.n_atoms for f in frames)

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    t_np = best(lambda: [compute_descriptors(cfg, f) for f in frames])
    modules = [TorchDescriptors(cfg, torch.tensor(cfg.species_index(f.symbols))) for f in frames]
    tensors = [(torch.tensor(f.positions), torch.tensor(f.cell)) for f in frames]

    def run_torch(grad: bool):
        for m, (p, c) in zip(modules, tensors):
            if grad:
                p = p.clone().requires_grad_(True)
                m(p, c, True).sum().backward()
            else:
                with torch.no_grad():
                    m(p, c, True)

    t_torch = best(lambda: run_torch(False))
    t_torch_grad = best(lambda: run_torch(True))
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"frames: {len(frames)} x {frames[0].n_atoms} atoms from {source}; cutoff {args.cutoff} Å; "
          f"{cfg.n_features} features; OMP_NUM_THREADS={threads}; torch threads {torch.get_num_threads()}")
    print("| implementation | ms / frame | atom-environments / s |")
    print("|---|---|---|")
    for name, t in (("numpy (training)", t_np), ("torch twin, forward", t_torch),
                    ("torch twin, forward + backward", t_torch_grad)):
        print(f"| {name} | {1e3 * t / len(frames):.2f} | {n_atoms / t:.3g} |")


if __name__ == "__main__":
    main()
