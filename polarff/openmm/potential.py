"""The polarff force as one torch module: positions → charges, polarizabilities → electrostatic energy.

``PolarffPotential`` chains the torch twin of the classifier (:class:`polarff.runtime.network.ChargeModel`,
which works in Å) and :class:`polarff.runtime.electrostatics.Electrostatics` (nm, kJ/mol). It is
TorchScript-compatible, so it runs inside ``openmmtorch.TorchForce`` on any OpenMM platform (CUDA
included), and the same scripted module drives the ``openmm.PythonForce`` implementation.

Forces are ``−∂E/∂r`` by autograd through everything, including the dependence of the charges and
polarizabilities on positions (the term that a parameter update in NonbondedForce would drop).

A model fitted with :mod:`polarff.electronegativity` adds the electronegativity term
E_χ = Σ_i [χ_s(i) (q_i − q_ref,s(i)) + ½ J_s(i) (q_i − q_ref,s(i))²] (first- and, where fitted, second-order
charge equilibration), which makes the learned charges nearly stationary points of the energy and is zero
for isolated molecules and ions.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from polarff.artifact import PolarffModel
from polarff.errors import ModelError
from polarff.runtime.electrostatics import Electrostatics
from polarff.runtime.network import ChargeModel

NM_TO_ANGSTROM = 10.0
ANGSTROM3_TO_NM3 = 1.0e-3


class PolarffPotential(torch.nn.Module):
    """Electrostatic energy (kJ/mol) of a system with environment-dependent charges and polarizabilities.

    Parameters
    ----------
    model : PolarffModel
        Trained artifact.
    symbols : list of str
        Chemical symbols of the atoms the potential acts on.
    exclusions : list of (int, int)
        Intramolecular pairs (indices into ``symbols``) without permanent-charge interaction.
    periodic : bool
        Whether the system is periodic (Ewald/PME) or isolated (direct sum).
    total_charge : float
        Net charge (e) of those atoms; predicted charges sum to it exactly. With the model card's
        ``charge_constraint: molecular`` each molecule (atoms linked through ``exclusions``) sums exactly to
        its formal charge instead (monatomic ions ±1, other molecules 0), and these must add up to it.
    atoms : list of int, optional
        Indices of those atoms in the whole OpenMM system (for mixed systems); all atoms if None.
    electrostatics : dict, optional
        Keyword options of :class:`Electrostatics` (cutoff_nm, method, ewald_error_tolerance,
        induction, induction_cutoff_nm, n_induction_iterations, thole_a, induction_field, ...). The model's per-species
        Thole strengths (``model.thole``) are applied unless ``thole_per_atom`` is given here.
    """

    def __init__(self, model: PolarffModel, symbols: List[str], exclusions, periodic: bool,
                 total_charge: float = 0.0, atoms: Optional[List[int]] = None,
                 electrostatics: Optional[dict] = None):
        super().__init__()
        self.charge_model = charge_model_for(model, list(symbols), total_charge, exclusions)
        options = dict(electrostatics or {})
        if model.thole is not None and options.get("thole_per_atom") is None:
            options["thole_per_atom"] = model.thole_per_atom(list(symbols), options.get("thole_a"))
        self.electrostatics = Electrostatics(len(symbols), exclusions, periodic, **options)
        self.periodic = bool(periodic)
        self.nm_to_angstrom = NM_TO_ANGSTROM
        self.angstrom3_to_nm3 = ANGSTROM3_TO_NM3
        self.use_subset = atoms is not None
        self.register_buffer("atoms", torch.tensor(atoms if atoms is not None else [], dtype=torch.long))
        chi, q_ref, hardness = electronegativity_per_atom(model, list(symbols))
        self.use_electronegativity = model.electronegativity is not None
        self.register_buffer("chi", torch.tensor(chi, dtype=torch.float64))
        self.register_buffer("hardness", torch.tensor(hardness, dtype=torch.float64))
        self.register_buffer("reference_charges", torch.tensor(q_ref, dtype=torch.float64))

    def _select(self, positions: torch.Tensor, box: Optional[torch.Tensor]):
        pos = positions.to(torch.float64)
        if self.use_subset:
            pos = pos[self.atoms]
        if box is None:
            cell = torch.zeros((3, 3), dtype=torch.float64, device=pos.device)
        else:
            cell = box.to(torch.float64)
        return pos, cell

    @torch.jit.export
    def charges_and_polarizabilities(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None
                                     ) -> List[torch.Tensor]:
        """Charges (e) and polarizabilities (nm³) of the potential's atoms at ``positions`` (nm)."""
        pos, cell = self._select(positions, box)
        q, alpha = self.charge_model(pos * self.nm_to_angstrom, cell * self.nm_to_angstrom, self.periodic)
        return [q, alpha * self.angstrom3_to_nm3]

    @torch.jit.export
    def properties(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Charges (e), polarizabilities (nm³), induced dipoles (e·nm) and energy terms (kJ/mol)."""
        pos, cell = self._select(positions, box)
        qa = self.charges_and_polarizabilities(positions, box)
        q, alpha = qa[0], qa[1]
        terms = self.electrostatics.energy_components(pos, cell, q, alpha)
        out: Dict[str, torch.Tensor] = {"charges": q, "polarizabilities": alpha,
                                        "induced_dipoles": self.electrostatics.induced_dipoles(pos, cell, q, alpha),
                                        "permanent_energy": terms["permanent"],
                                        "induction_energy": terms["induction"],
                                        "electronegativity_energy": self.electronegativity_energy(q)}
        return out

    @torch.jit.export
    def electronegativity_energy(self, charges: torch.Tensor) -> torch.Tensor:
        """E_χ = Σ_i [χ_i (q_i − q_ref,i) + ½ J_i (q_i − q_ref,i)²] in kJ/mol (0 for a model without the term)."""
        dq = charges - self.reference_charges
        return torch.sum(self.chi * dq + 0.5 * self.hardness * dq * dq)

    @torch.jit.export
    def energy_from_charges(self, positions: torch.Tensor, box: Optional[torch.Tensor], charges: torch.Tensor,
                            polarizabilities: torch.Tensor) -> torch.Tensor:
        """Energy (kJ/mol) at given charges (e) and polarizabilities (nm³) of the potential's atoms."""
        pos, cell = self._select(positions, box)
        energy = self.electrostatics(pos, cell, charges, polarizabilities)
        if self.use_electronegativity:
            energy = energy + self.electronegativity_energy(charges)
        return energy

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Energy in kJ/mol; positions (N_system, 3) and box (3, 3) in nm, as openmm-torch passes them."""
        qa = self.charges_and_polarizabilities(positions, box)
        return self.energy_from_charges(positions, box, qa[0], qa[1])


def charge_model_for(model: PolarffModel, symbols: List[str], total_charge: float, pairs) -> ChargeModel:
    """The model's :class:`ChargeModel` for these atoms, with its card's charge constraint: the molecules are
    the groups of atoms linked by the intramolecular ``pairs`` (indices into ``symbols``)."""
    if model.charge_constraint == "molecular":
        molecules, molecule_charges = molecular_charge_targets(symbols, pairs)
        return ChargeModel(model, symbols, total_charge, molecules=molecules, molecule_charges=molecule_charges)
    return ChargeModel(model, symbols, total_charge)


def molecular_charge_targets(symbols: List[str], pairs) -> Tuple[List[int], List[float]]:
    """Molecule index of each atom (connected components of the intramolecular ``pairs``, numbered in order of
    first atom) and each molecule's formal charge (e): the sum of :data:`polarff.openmm.system.FORMAL_CHARGES`
    over its atoms, so monatomic ions carry ±1 and molecules made of other species 0."""
    from polarff.openmm.system import FORMAL_CHARGES

    parent = list(range(len(symbols)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(int(i))] = root(int(j))
    number: Dict[int, int] = {}
    molecules = [number.setdefault(root(i), len(number)) for i in range(len(symbols))]
    charges = [0.0] * len(number)
    for i, s in enumerate(symbols):
        charges[molecules[i]] += float(FORMAL_CHARGES.get(s, 0))
    return molecules, charges


def electronegativity_per_atom(model: PolarffModel, symbols: List[str]) -> List[List[float]]:
    """χ (kJ/mol/e), reference charge (e) and hardness J (kJ/mol/e², 0 where not fitted) of each atom from
    the model's electronegativity term (zeros without one)."""
    term = model.electronegativity
    if term is None:
        return [[0.0] * len(symbols), [0.0] * len(symbols), [0.0] * len(symbols)]
    chi, q_ref = term["chi_kj_mol_e"], term["reference_charges_e"]
    missing = sorted({s for s in symbols if s not in chi or s not in q_ref})
    if missing:
        raise ModelError(f"the model's electronegativity term has no χ or reference charge for {missing} "
                         f"(it has {sorted(chi)}); refit it on runs that contain these species")
    hardness = term.get("hardness_kj_mol_e2", {})
    return [[float(chi[s]) for s in symbols], [float(q_ref[s]) for s in symbols],
            [float(hardness.get(s, 0.0)) for s in symbols]]


def energy_and_forces(module: torch.nn.Module, positions_nm, box_nm=None):
    """Energy (kJ/mol, float) and forces (kJ/mol/nm, ndarray) of a (scripted) potential by autograd."""
    import numpy as np

    pos = torch.tensor(np.asarray(positions_nm, dtype=np.float64), requires_grad=True)
    box = None if box_nm is None else torch.tensor(np.asarray(box_nm, dtype=np.float64))
    energy = module(pos, box)
    (grad,) = torch.autograd.grad(energy, pos)
    return float(energy.detach()), -grad.numpy()
