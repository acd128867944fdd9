"""The electronegativity term: make the learned charges (nearly) stationary points of the energy.

polarff's energy is E(r) = E_elec(r, q(r), α(r)) + fixed terms, with charges q(r) learned from QM labels.
In a charge-equilibration model the charges minimise the energy (at fixed total charge), so
∂E/∂q_i = μ for every atom and the charges' dependence on positions adds no force. Learned charges are not
minimisers: the force carries a *charge-gradient* part −Σ_i φ_i ∇q_i, with φ_i = ∂E/∂q_i the electrostatic
potential at atom i (induced dipoles included), and the energy misses the stabilisation that moving charge
between molecules brings (charge transfer). On NaCl(aq) frames its RMS is 6–9 % of the rest of the
electrostatic force on water atoms and Cl⁻ and 36–39 % on Na⁺, and the ions' hydration energy falls ~35 %
short of experiment (``examples/ion_hydration_energy.py``).

The electronegativity term adds the first-order charge-equilibration energy

    E_χ = Σ_i χ_s(i) (q_i − q_ref,s(i)),

one χ per species (kJ/mol/e), so that the charge-gradient force becomes −Σ_i (φ_i + χ_s(i)) ∇q_i.
:func:`fit_electronegativity` chooses χ by linear least squares to make that force as small as possible
on frames of MD runs (the sum over all atoms of ∇q_i is zero, so χ is defined up to one common constant:
the fit returns the minimum-norm solution). ``q_ref`` are the model's charges of each molecule or ion alone
(formal charges for monatomic ions), so that E_χ of isolated molecules is zero and energies keep the
gas-phase zero that hydration and cohesive energies are measured from. With ``--hardness O H`` the fit also
gives those species a hardness J (kJ/mol/e²), the second-order term ½ J_s(i) (q_i − q_ref,s(i))², fitted in
the same least-squares problem.

Under the molecular charge constraint (``--charge-constraint molecular``, card key ``charge_constraint``) no
charge moves between molecules: monatomic ions keep ±1 and a χ shared by all atoms of a molecule moves no
charge, so those χ stay 0 and only J (charge moved inside a molecule) is fitted.

Command line::

    polarff fit-electronegativity MODEL.pff RUN_DIR [RUN_DIR ...] -o OUT.pff --frames 40 [--tie O H] [--hardness O H]
        [--charge-constraint molecular]
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from polarff.artifact import CHARGE_CONSTRAINTS, PolarffModel, load_model
from polarff.cli import Command, register
from polarff.errors import ConfigError, InputError


def potential_for_run(run_dir: str | Path, model: PolarffModel | None = None, cutoff_nm: float | None = None,
                      electrostatics: dict | None = None):
    """The polarff potential (eager torch module) of a finished ``polarff simulate`` run, built as
    ``create_system`` built it (same cutoffs and electrostatics options), with the run's model or ``model``, the
    run's cutoff or ``cutoff_nm`` (nm; real-space Ewald and induction as ``create_system`` sets them from it), and
    the run's electrostatics options updated with ``electrostatics`` (e.g. ``{"induction_field": "switched"}``).

    Returns
    -------
    potential, topology, symbols (ndarray of str)
    """
    from polarff.openmm.system import build_potential, electrostatics_options, topology_symbols
    from polarff.simulate import read_pdb

    run_dir = Path(run_dir)
    if not (run_dir / "run.json").exists():
        raise InputError("not a finished polarff run", field=f"{run_dir}/run.json", expected="the file",
                         found="no such file")
    config = json.loads((run_dir / "run.json").read_text())["config"]
    if not config.get("model"):
        raise InputError("the run has no polarff model (a fixed-charge baseline?)",
                         field=f"{run_dir}/run.json: config.model", expected="a .pff path", found="none")
    topology, _, _ = read_pdb(str(run_dir / "start.pdb"))
    options = electrostatics_options(config["cutoff_nm"] if cutoff_nm is None else float(cutoff_nm),
                                     {**(config.get("electrostatics") or {}), **(electrostatics or {})})
    # eager, not scripted: TorchScript's executor can return charges cut from the positions' graph after
    # gradient-free calls of a module of the same type (tests/test_electronegativity.py)
    potential = build_potential(model or load_model(config["model"]), topology, electrostatics=options, script=False)
    return potential, topology, np.array(topology_symbols(topology))


def isolated_reference_charges(model: PolarffModel, topology, positions_nm: np.ndarray) -> dict[str, float]:
    """Charges (e) the model gives each species in its molecule or ion alone (no neighbours, not periodic),
    averaged over the topology's molecules; monatomic ions get their formal charge exactly."""
    import torch

    from polarff.openmm.system import FORMAL_CHARGES, topology_symbols
    from polarff.runtime.network import ChargeModel

    symbols = topology_symbols(topology)
    values: dict[str, list[float]] = {}
    networks: dict[tuple, ChargeModel] = {}  # one per composition
    for residue in topology.residues():
        index = [a.index for a in residue.atoms()]
        names = tuple(symbols[i] for i in index)
        if names in networks and len(index) == 1:  # a lone ion's charge is its formal charge
            continue
        if names not in networks:
            networks[names] = ChargeModel(model, list(names), float(sum(FORMAL_CHARGES.get(s, 0) for s in names)))
        net = networks[names]
        pos = torch.tensor(np.asarray(positions_nm)[index] * 10.0, dtype=torch.float64)
        with torch.no_grad():
            q, _ = net(pos, torch.zeros((3, 3), dtype=torch.float64), False)
        for s, value in zip(names, q.numpy()):
            values.setdefault(s, []).append(float(value))
    return {s: float(np.mean(v)) for s, v in values.items()}


def charge_gradient_forces(potential, positions_nm: np.ndarray, box_nm: np.ndarray | None,
                           species_masks: np.ndarray, reference_charges: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The charge-gradient force of one frame and its change per unit χ and per unit J of each species.

    Parameters
    ----------
    potential : scripted PolarffPotential
    positions_nm, box_nm : ndarray
        Frame (nm).
    species_masks : ndarray (S, N) of bool
        Atoms of each species.
    reference_charges : ndarray (N,)
        q_ref of each atom (e).

    Returns
    -------
    force : ndarray (N, 3)
        −Σ_i (∂E/∂q_i) ∇q_i in kJ/mol/nm (∂E/∂q at fixed positions and polarizabilities; the model's own
        electronegativity term included).
    chi_columns : ndarray (S, N, 3)
        −∇ Σ_{i∈s} q_i: the force that adding 1 kJ/mol/e to χ_s adds.
    hardness_columns : ndarray (S, N, 3)
        −∇ ½ Σ_{i∈s} (q_i − q_ref,i)²: the force that adding 1 kJ/mol/e² to J_s adds.
    """
    import torch

    pos = torch.tensor(np.asarray(positions_nm, dtype=np.float64), requires_grad=True)
    box = None if box_nm is None else torch.tensor(np.asarray(box_nm, dtype=np.float64))
    q, alpha = potential.charges_and_polarizabilities(pos, box)
    q_held = q.detach().clone().requires_grad_(True)
    energy = potential.energy_from_charges(pos.detach(), box, q_held, alpha.detach())
    (phi,) = torch.autograd.grad(energy, q_held)
    (grad,) = torch.autograd.grad(torch.sum(phi * q), pos, retain_graph=True)
    masks = torch.tensor(np.asarray(species_masks), dtype=torch.float64)
    dq = q - torch.tensor(np.asarray(reference_charges, dtype=np.float64))
    sums = [torch.sum(m * q) for m in masks] + [0.5 * torch.sum(m * dq * dq) for m in masks]
    columns = [-torch.autograd.grad(value, pos, retain_graph=k < len(sums) - 1)[0].numpy()
               for k, value in enumerate(sums)]
    return -grad.numpy(), np.array(columns[:len(masks)]), np.array(columns[len(masks):])


def fit_electronegativity(model: PolarffModel, run_dirs: Sequence[str | Path], n_frames: int = 40,
                          progress: bool = True, tied: Sequence[str] = (), hardness: Sequence[str] = ()) -> dict:
    """Fit the electronegativity term of ``model`` on frames of finished polarff runs.

    Parameters
    ----------
    model : PolarffModel
        Model to fit the term for (an existing term is refined: its χ and J are the starting point).
    run_dirs : sequence of path
        ``polarff simulate`` output folders (their ``start.pdb``, ``run.json`` and trajectory).
    n_frames : int
        Frames per run, evenly spaced; the even-numbered ones are fitted, the odd ones held out.
    progress : bool
        Print one line per run.
    tied : sequence of str
        Species that share one χ (e.g. ``("O", "H")``: charge moved inside a water molecule then costs no
        first-order energy, only charge moved between molecules and ions does).
    hardness : sequence of str
        Species that get a hardness J (second-order term ½ J (q − q_ref)²), fitted with χ. Only species
        whose charge varies with the environment (water O and H); a monatomic ion's charge barely changes,
        so its J would only duplicate its χ.

    Returns
    -------
    dict
        The term as stored in the model (``chi_kj_mol_e``, ``reference_charges_e``, ``hardness_kj_mol_e2``
        for a fit with ``hardness``) with ``fitted_on`` and the RMS charge-gradient force per species
        (kJ/mol/nm) on the held-out frames before and after.

    Raises
    ------
    ConfigError
        If fewer than 2 frames per run are asked for, or ``tied`` or ``hardness`` names a species the model
        lacks.
    """
    from polarff.simulate import load_trajectory

    if n_frames < 2:
        raise ConfigError(f"--frames: expected at least 2 (half are held out), found {n_frames}")
    species = list(model.species)
    for option, names in (("--tie", tied), ("--hardness", hardness)):
        unknown = sorted(set(names) - set(species))
        if unknown:
            raise ConfigError(f"{option}: species {unknown} are not in the model (model species: {species})")
    old = model.electronegativity or {}
    chi_old = np.array([float(old.get("chi_kj_mol_e", {}).get(s, 0.0)) for s in species])
    j_old = np.array([float(old.get("hardness_kj_mol_e2", {}).get(s, 0.0)) for s in species])
    old_tied = {s: old["chi_kj_mol_e"][s] for s in tied if s in old.get("chi_kj_mol_e", {})}
    if len(set(old_tied.values())) > 1:
        raise ConfigError(f"--tie: the model's existing term has different χ for {sorted(old_tied)} "
                          f"({old_tied}); refit the model without the term")
    fit_rows, test_rows, present, q_ref, fitted_on = [], [], np.zeros(len(species), bool), {}, []
    for run_dir in run_dirs:
        potential, topology, symbols = potential_for_run(run_dir, model)
        traj = load_trajectory(str(run_dir))
        masks = np.array([symbols == s for s in species])
        present |= masks.any(axis=1)
        q_ref.update(isolated_reference_charges(model, topology, traj["positions"][0]))
        q_ref = dict(q_ref, **old.get("reference_charges_e", {}))  # a refit keeps the term's own q_ref
        reference = np.array([q_ref[s] for s in symbols])
        picks = np.linspace(0, len(traj["positions"]) - 1, n_frames).astype(int)
        for k, frame in enumerate(picks):
            box = traj["box"][frame] if "box" in traj else None
            force, chi_columns, j_columns = charge_gradient_forces(potential, traj["positions"][frame], box, masks,
                                                                   reference)
            (fit_rows if k % 2 == 0 else test_rows).append((force, np.concatenate([chi_columns, j_columns]),
                                                            symbols))
        fitted_on.append({"run": str(run_dir), "frames": int(n_frames), "atoms": int(len(symbols))})
        if progress:
            print(f"  {run_dir}: {n_frames} frames of {len(traj['positions'])}", flush=True)
    # parameters: χ of each free species present, one χ shared by the tied species (columns summed), then
    # J of each hardness species present; columns of the rows are χ_1..χ_S, J_1..J_S
    S = len(species)
    groups = [[k] for k, s in enumerate(species) if present[k] and s not in tied]
    shared = [k for k, s in enumerate(species) if present[k] and s in tied]
    groups += [shared] if shared else []
    n_chi = len(groups)
    groups += [[S + k] for k, s in enumerate(species) if present[k] and s in hardness]
    A = np.concatenate([np.moveaxis(c, 0, -1).reshape(-1, 2 * S) for _, c, _ in fit_rows])
    b = np.concatenate([f.reshape(-1) for f, _, _ in fit_rows])
    design = np.stack([A[:, g].sum(axis=1) for g in groups], axis=1)
    # columns scaled to unit norm; the χ columns sum to zero (Σ_i ∇q_i = 0 at fixed total charge), and the
    # cut-off drops that direction, which round-off would otherwise turn into a huge common χ shift. Columns
    # that are zero up to round-off (a χ whose charges cannot move: a monatomic ion, or water O and H tied,
    # under the molecular charge constraint) are left out: scaled to unit norm they would fit pure noise.
    scale = np.linalg.norm(design, axis=0)
    used = scale > 1e-9 * scale.max()
    solution = np.zeros(design.shape[1])
    fitted, *_ = np.linalg.lstsq(design[:, used] / scale[used], -b, rcond=1e-9)
    solution[used] = fitted / scale[used]
    chi_fitted = np.flatnonzero(used[:n_chi])  # the minimum-norm choice of the free common χ constant
    if len(chi_fitted):
        solution[chi_fitted] -= solution[chi_fitted].mean()
    delta = np.zeros(2 * S)
    for value, group in zip(solution, groups):
        delta[group] = value
    chi, j = chi_old + delta[:S], j_old + delta[S:]
    before = _rms_by_species(test_rows, np.zeros(2 * S), species)
    after = _rms_by_species(test_rows, delta, species)
    term = {"chi_kj_mol_e": {s: float(chi[k]) for k, s in enumerate(species) if present[k]},
            "reference_charges_e": {s: q_ref[s] for s in species if s in q_ref}}
    j_species = set(hardness) | set(old.get("hardness_kj_mol_e2", {}))
    if j_species:
        term["hardness_kj_mol_e2"] = {s: float(j[species.index(s)]) for s in species
                                      if s in j_species and present[species.index(s)]}
    return dict(term, fitted_on=fitted_on, tied=sorted(tied),
                rms_charge_gradient_force_kj_mol_nm={"held_out_before": before, "held_out_after": after})


def _rms_by_species(rows, delta: np.ndarray, species: list[str]) -> dict[str, float]:
    """RMS over atoms and frames of the charge-gradient force with χ changed by ``delta``, per species."""
    sums: dict[str, list[float]] = {}
    for force, columns, symbols in rows:
        total = force + np.tensordot(delta, columns, axes=1)
        for s in species:
            m = symbols == s
            if m.any():
                sums.setdefault(s, []).extend((total[m] ** 2).sum(axis=1).tolist())
    return {s: float(np.sqrt(np.mean(v))) for s, v in sums.items()}


def with_electronegativity(model: PolarffModel, term: dict, note: str = "") -> PolarffModel:
    """A copy of ``model`` carrying the electronegativity ``term``; the card records its origin."""
    out = copy.deepcopy(model)
    out.electronegativity = term
    summary = {"chi_kj_mol_e": term["chi_kj_mol_e"]}
    if term.get("hardness_kj_mol_e2"):
        summary["hardness_kj_mol_e2"] = term["hardness_kj_mol_e2"]
    out.card = dict(out.card, electronegativity={**summary,
                                                 "fitted_on": [r["run"] for r in term.get("fitted_on", [])],
                                                 "note": note})
    return out


def with_charge_constraint(model: PolarffModel, constraint: str) -> PolarffModel:
    """A copy of ``model`` with the card key ``charge_constraint`` set and no electronegativity term (a term
    is fitted under one constraint: its χ and J do not carry over to the other)."""
    if constraint not in CHARGE_CONSTRAINTS:
        raise ConfigError(f"charge constraint: expected one of {CHARGE_CONSTRAINTS}, found {constraint!r}")
    out = copy.deepcopy(model)
    out.electronegativity = None
    out.card = {k: v for k, v in out.card.items() if k != "electronegativity"}
    out.card["charge_constraint"] = constraint
    out.card["variant"] = (out.card.get("variant", "") + f"; charge constraint set to {constraint!r}, the "
                           "electronegativity term fitted afresh under it").lstrip("; ")
    return out


class FitElectronegativity(Command):
    name = "fit-electronegativity"
    help = ("add the electronegativity term (one χ per species) that makes a model's learned charges nearly "
            "stationary points of its energy, fitted on frames of finished polarff runs")

    @staticmethod
    def add_arguments(p):
        p.add_argument("model", help="polarff model (.pff)")
        p.add_argument("runs", nargs="+", help="finished `polarff simulate` run folders made with this model")
        p.add_argument("-o", "--output", required=True, help="model with the term (.pff, written atomically)")
        p.add_argument("--frames", type=int, default=40,
                       help="frames per run, evenly spaced; half fitted, half held out (default 40)")
        p.add_argument("--note", default="", help="free text stored in the model card")
        p.add_argument("--tie", nargs="+", default=[], metavar="SPECIES",
                       help="species that share one χ (e.g. --tie O H: no energy for charge moved inside a water)")
        p.add_argument("--hardness", nargs="+", default=[], metavar="SPECIES",
                       help="species that also get a hardness J, the second-order term ½ J (q − q_ref)² "
                            "(e.g. --hardness O H; not for monatomic ions, whose charge barely varies)")
        p.add_argument("--charge-constraint", choices=CHARGE_CONSTRAINTS,
                       help="set the model's charge constraint first (card key charge_constraint): 'molecular' "
                            "keeps each molecule at its formal charge (no charge transfer between molecules); "
                            "a term fitted under the other constraint is dropped and fitted afresh")

    @staticmethod
    def run(args):
        model = load_model(args.model)
        if args.charge_constraint and args.charge_constraint != model.charge_constraint:
            model = with_charge_constraint(model, args.charge_constraint)
            print(f"charge constraint set to {args.charge_constraint!r}; the model's electronegativity term "
                  "(fitted under the other constraint) is dropped")
        print(f"fitting the electronegativity term of {args.model} on {len(args.runs)} run(s)")
        term = fit_electronegativity(model, args.runs, args.frames, tied=args.tie, hardness=args.hardness)
        rms = term["rms_charge_gradient_force_kj_mol_nm"]
        hardness = term.get("hardness_kj_mol_e2", {})
        print("species   χ (kJ/mol/e)   J (kJ/mol/e²)   q_ref (e)   "
              "RMS charge-gradient force, held out (kJ/mol/nm): before → after")
        for s, chi in term["chi_kj_mol_e"].items():
            j = f"{hardness[s]:13.1f}" if s in hardness else f"{'—':>13s}"
            before, after = (rms[key].get(s, float("nan")) for key in ("held_out_before", "held_out_after"))
            print(f"{s:8s} {chi:12.1f}   {j} {term['reference_charges_e'].get(s, float('nan')):11.4f}"
                  f"   {before:8.1f} → {after:.1f}")
            if s in hardness and hardness[s] < 0:
                print(f"  warning: J of {s} is negative (charge deviations lower the energy); the fit is "
                      "compensating another error, check it against held-out runs")
        with_electronegativity(model, term, args.note).save(args.output)
        print(f"wrote {args.output}")
        return 0


register(FitElectronegativity)
