"""How much polarff's energy, induced dipoles and forces along a finished run depend on the cutoff.

polarff's dipole–dipole coupling is real space only: it is switched off smoothly between ``cutoff − 0.1 nm``
and the cutoff, which ``polarff benchmark`` and ``polarff simulate`` set from the box (min(0.9, 0.49 × edge)
by default); the charges' polarising field is full range (Ewald), and was switched off the same way, atom by
atom, before 2026-11-22 (``induction_field="switched"``; docs/induction-field.md). The permanent-charge energy
is an Ewald sum and does not depend on the cutoff beyond the Ewald tolerance. This
script re-evaluates frames of a run at other cutoffs (positions unchanged) and prints, per cutoff, the
permanent and induction energy per water, the mean induced dipole of a water molecule, and the RMS change of
the polarff force on each species against the run's own cutoff. The Lennard-Jones fixed terms (OpenMM, same
cutoff) are not included.

Usage (a finished run in a box whose edge exceeds twice the largest cutoff; ``--induction-field switched``
evaluates with the field of polarff before 2026-11-22, ``--box`` adds a configuration the run did not make)::

    python examples/cutoff_sensitivity.py build/bench-clthole-128-s13/runs/polarff-nacl --cutoffs 0.612 0.7 0.77 \\
        --frames 6 --induction-field switched --box build/bench-clthole-128-s13/boxes/nacl.pdb
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: Debye per e·nm.
DEBYE_PER_E_NM = 48.0320


def cutoff_sensitivity(run_dir: str, cutoffs: list[float], n_frames: int = 6, induction_field: str | None = None
                       ) -> dict:
    """Energy terms, induced water dipoles and force changes of ``n_frames`` frames at each cutoff.

    Parameters
    ----------
    run_dir : str
        Finished ``polarff simulate`` run of a polarff model (periodic box).
    cutoffs : list of float
        Cutoffs to evaluate (nm); each must be below half the smallest box edge.
    n_frames : int
        Frames taken evenly over the run.
    induction_field : {'full', 'switched'}, optional
        Evaluate with this polarising field instead of the run's (``polarff.runtime.electrostatics``).

    Returns
    -------
    dict
        ``run_cutoff_nm``, ``n_frames``, ``n_waters`` and ``rows``: per cutoff ``cutoff_nm``,
        ``permanent_per_water`` and ``induction_per_water`` (kJ/mol, total over the box divided by the number
        of waters), ``induced_dipole_debye`` (mean |Σ μ_i| of a water molecule), and ``force_change``: per
        species (RMS |F_c − F_run| in kJ/mol/nm, RMS |F_run|).
    """
    import torch

    from polarff.electronegativity import potential_for_run
    from polarff.errors import ConfigError
    from polarff.simulate import load_trajectory

    run_cutoff = float(json.loads((Path(run_dir) / "run.json").read_text())["config"]["cutoff_nm"])
    traj = load_trajectory(run_dir)
    edge = float(np.min(np.linalg.norm(traj["box"][0], axis=1)))
    for c in cutoffs:
        if not 0.0 < c < 0.5 * edge:
            raise ConfigError(f"--cutoffs: {c} nm must lie in (0, {0.5 * edge:.3f}) nm, half the smallest box edge "
                              f"of {run_dir}")
    options = {"induction_field": induction_field} if induction_field else None
    potentials = {c: potential_for_run(run_dir, cutoff_nm=c, electrostatics=options)[0] for c in [run_cutoff, *cutoffs]}
    _, topology, symbols = potential_for_run(run_dir)
    waters = [[a.index for a in res.atoms()] for res in topology.residues() if len(list(res.atoms())) == 3]
    picks = np.linspace(0, len(traj["positions"]) - 1, n_frames).round().astype(int)

    def evaluate(potential, k):
        pos = torch.tensor(traj["positions"][k], dtype=torch.float64, requires_grad=True)
        box = torch.tensor(traj["box"][k], dtype=torch.float64)
        (grad,) = torch.autograd.grad(potential(pos, box), pos)
        with torch.no_grad():
            props = potential.properties(pos.detach(), box)
        mu = props["induced_dipoles"].detach().numpy()
        molecular = np.linalg.norm(np.array([mu[w].sum(0) for w in waters]), axis=1) if waters else np.zeros(1)
        return (float(props["permanent_energy"]), float(props["induction_energy"]),
                float(molecular.mean()) * DEBYE_PER_E_NM, -grad.numpy())

    reference = {k: evaluate(potentials[run_cutoff], k) for k in picks}
    rows = []
    for c in cutoffs:
        values = [evaluate(potentials[c], k) if c != run_cutoff else reference[k] for k in picks]
        change = {}
        for s in dict.fromkeys(symbols):
            m = symbols == s
            diff = [np.sqrt(((v[3][m] - reference[k][3][m]) ** 2).sum(1).mean()) for v, k in zip(values, picks)]
            size = [np.sqrt((reference[k][3][m] ** 2).sum(1).mean()) for k in picks]
            change[str(s)] = (float(np.mean(diff)), float(np.mean(size)))
        n_w = max(len(waters), 1)
        rows.append({"cutoff_nm": c, "permanent_per_water": float(np.mean([v[0] for v in values])) / n_w,
                     "induction_per_water": float(np.mean([v[1] for v in values])) / n_w,
                     "induced_dipole_debye": float(np.mean([v[2] for v in values])), "force_change": change})
    return {"run_cutoff_nm": run_cutoff, "n_frames": len(picks), "n_waters": len(waters), "rows": rows}


def box_induction(run_dir: str, pdb: str, cutoffs: list[float], induction_field: str | None = None) -> list[float]:
    """Induction energy per water (kJ/mol) of the configuration in ``pdb`` (same topology as the run, e.g. the
    box a benchmark equilibrated with the fixed-charge baseline) at each cutoff, with the run's potential."""
    import torch

    from polarff.electronegativity import potential_for_run
    from polarff.simulate import read_pdb

    topology, positions, box = read_pdb(pdb)
    n_waters = sum(1 for res in topology.residues() if len(list(res.atoms())) == 3)
    options = {"induction_field": induction_field} if induction_field else None
    x = torch.tensor(np.asarray(positions), dtype=torch.float64)
    cell = torch.tensor(np.asarray(box), dtype=torch.float64)
    values = []
    for c in cutoffs:
        potential = potential_for_run(run_dir, cutoff_nm=c, electrostatics=options)[0]
        with torch.no_grad():
            values.append(float(potential.properties(x, cell)["induction_energy"]) / n_waters)
    return values


def format_table(result: dict) -> str:
    """Markdown table of :func:`cutoff_sensitivity`."""
    species = list(result["rows"][0]["force_change"])
    head = ("| cutoff (nm) | permanent / water (kJ/mol) | induction / water (kJ/mol) | induced dipole / water (D) | "
            + " | ".join(f"ΔF {s} (kJ/mol/nm, % of F)" for s in species) + " |")
    lines = [head, "|" + "---|" * (4 + len(species))]
    for r in result["rows"]:
        cells = [f"{r['force_change'][s][0]:.1f} ({100 * r['force_change'][s][0] / r['force_change'][s][1]:.1f} %)"
                 for s in species]
        mark = " (run)" if r["cutoff_nm"] == result["run_cutoff_nm"] else ""
        lines.append(f"| {r['cutoff_nm']:g}{mark} | {r['permanent_per_water']:.2f} | {r['induction_per_water']:.2f} | "
                     f"{r['induced_dipole_debye']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="finished polarff simulate run folder")
    parser.add_argument("--cutoffs", type=float, nargs="+", required=True, help="cutoffs to evaluate (nm)")
    parser.add_argument("--frames", type=int, default=6, help="frames taken evenly over the run")
    parser.add_argument("--induction-field", choices=["full", "switched"],
                        help="evaluate with this polarising field instead of the run's")
    parser.add_argument("--box", help="also evaluate this PDB (e.g. a box equilibrated with another model)")
    args = parser.parse_args(argv)
    result = cutoff_sensitivity(args.run, args.cutoffs, args.frames, args.induction_field)
    print(f"{args.run}: {result['n_frames']} frames, {result['n_waters']} waters, run cutoff "
          f"{result['run_cutoff_nm']} nm; ΔF against the run's cutoff")
    print(format_table(result))
    if args.box:
        values = box_induction(args.run, args.box, args.cutoffs, args.induction_field)
        print(f"{args.box}: induction per water (kJ/mol) " + ", ".join(f"{c:g} nm: {v:.2f}"
                                                                        for c, v in zip(args.cutoffs, values)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
