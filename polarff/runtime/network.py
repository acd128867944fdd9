"""Torch twin of the Keras classifier: expected charges and polarizabilities from positions.

Filled from a :class:`polarff.artifact.PolarffModel` (numpy weights); no Keras or TensorFlow import.
Charges are the probability-weighted class centres, shifted uniformly so that they sum exactly to the
system's total charge (or, with ``molecules``, within each molecule to its formal charge: no charge
transfer between molecules); polarizabilities are probability-weighted centres (Å³). Both are smooth in
positions, so forces through them are well defined.
"""

from __future__ import annotations

import torch

from polarff.artifact import PolarffModel
from polarff.errors import ModelError
from polarff.runtime.descriptors import TorchDescriptors


class ChargeModel(torch.nn.Module):
    """Per-atom charges (e) and polarizabilities (Å³) of one system of fixed composition.

    Parameters
    ----------
    model : PolarffModel
        Trained artifact.
    symbols : list of str
        Chemical symbols of the system's atoms, in order.
    total_charge : float
        Net charge of the system (e); predicted charges sum to it exactly.
    dtype : torch.dtype
        Computation precision (float64 by default; float32 for speed on GPUs).
    molecules : list of int, optional
        Molecule index (0 … M−1) of each atom. With it, each molecule's charges are shifted uniformly to sum
        to its entry of ``molecule_charges``; without it, all atoms are shifted together to ``total_charge``.
    molecule_charges : list of float, optional
        Formal charge (e) of each molecule; required with ``molecules`` and summing to ``total_charge``.
    """

    def __init__(self, model: PolarffModel, symbols: list[str], total_charge: float = 0.0,
                 dtype: torch.dtype = torch.float64, molecules: list[int] | None = None,
                 molecule_charges: list[float] | None = None):
        super().__init__()
        self.per_molecule = molecules is not None
        ids, targets = _molecule_targets(len(symbols), total_charge, molecules, molecule_charges)
        self.register_buffer("molecule_of_atom", torch.tensor(ids, dtype=torch.long))
        self.register_buffer("molecule_charges", torch.tensor(targets, dtype=dtype))
        self.register_buffer("molecule_sizes", torch.zeros(len(targets), dtype=dtype).index_add_(
            0, torch.tensor(ids, dtype=torch.long), torch.ones(len(ids), dtype=dtype)))
        species = torch.tensor(model.descriptor.species_index(list(symbols), "topology"), dtype=torch.long)
        self.descriptors = TorchDescriptors(model.descriptor, species)
        self.total_charge = float(total_charge)
        self.n_atoms = len(symbols)
        n_spec = model.descriptor.n_species
        self.register_buffer("onehot", torch.eye(n_spec, dtype=dtype)[species])
        self.register_buffer("feature_mean", torch.tensor(model.network.feature_mean, dtype=dtype))
        self.register_buffer("feature_std", torch.tensor(model.network.feature_std, dtype=dtype))
        layers = []
        for k in range(len(model.network.hidden)):
            layers.append(_linear(model, f"dense_{k}", dtype))
        self.trunk = torch.nn.ModuleList(layers)
        self.use_silu = model.network.activation == "silu"
        self.head_q = _linear(model, "head_charges", dtype)
        self.head_a = _linear(model, "head_polarizabilities", dtype)
        bq, ba = model.bins["charges"], model.bins["polarizabilities"]
        self.n_cls_q, self.n_cls_a = bq.n_classes, ba.n_classes
        self.register_buffer("centres_q", torch.tensor(bq.centres, dtype=dtype)[species])  # (N, K)
        self.register_buffer("centres_a", torch.tensor(ba.centres, dtype=dtype)[species])
        self.register_buffer("mask_q", torch.where(torch.tensor(bq.valid)[species], 0.0, -1e9).to(dtype))
        self.register_buffer("mask_a", torch.where(torch.tensor(ba.valid)[species], 0.0, -1e9).to(dtype))
        self.n_species = n_spec
        self.dtype_ = dtype

    def probabilities(self, positions: torch.Tensor, cell: torch.Tensor, periodic: bool
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class probabilities (N, K_q) and (N, K_α); positions and cell in Å."""
        x = self.descriptors(positions.to(self.dtype_), cell.to(self.dtype_), periodic)
        h = torch.cat([(x - self.feature_mean) / self.feature_std, self.onehot], dim=1)
        for layer in self.trunk:
            h = layer(h)
            h = torch.nn.functional.silu(h) if self.use_silu else torch.tanh(h)
        n = h.shape[0]
        lq = self.head_q(h).reshape(n, self.n_species, self.n_cls_q)
        la = self.head_a(h).reshape(n, self.n_species, self.n_cls_a)
        lq = torch.sum(lq * self.onehot[:, :, None], dim=1) + self.mask_q
        la = torch.sum(la * self.onehot[:, :, None], dim=1) + self.mask_a
        return torch.softmax(lq, dim=1), torch.softmax(la, dim=1)

    def forward(self, positions: torch.Tensor, cell: torch.Tensor, periodic: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Neutralised expected charges (N,) in e and expected polarizabilities (N,) in Å³."""
        pq, pa = self.probabilities(positions, cell, periodic)
        q = torch.sum(pq * self.centres_q, dim=1)
        if self.per_molecule:
            sums = torch.zeros_like(self.molecule_charges).index_add(0, self.molecule_of_atom, q)
            q = q - ((sums - self.molecule_charges) / self.molecule_sizes)[self.molecule_of_atom]
        else:
            q = q - (torch.sum(q) - self.total_charge) / self.n_atoms
        alpha = torch.sum(pa * self.centres_a, dim=1)
        return q, alpha


def _molecule_targets(n_atoms: int, total_charge: float, molecules: list[int] | None,
                      molecule_charges: list[float] | None) -> tuple[list[int], list[float]]:
    """Checked molecule index per atom and charge per molecule (one molecule of ``total_charge`` if None)."""
    if molecules is None:
        return [0] * n_atoms, [float(total_charge)]
    if molecule_charges is None:
        raise ModelError("molecules given without molecule_charges: the formal charge of each molecule is needed")
    ids, targets = [int(m) for m in molecules], [float(c) for c in molecule_charges]
    if len(ids) != n_atoms:
        raise ModelError(f"molecules: expected one index per atom ({n_atoms}), found {len(ids)}")
    if sorted(set(ids)) != list(range(len(targets))):
        raise ModelError(f"molecules: expected indices 0…{len(targets) - 1}, each used at least once (one per "
                         f"entry of molecule_charges), found {sorted(set(ids))[:10]}")
    if abs(sum(targets) - total_charge) > 1e-9:
        raise ModelError(f"the molecules' formal charges sum to {sum(targets):g} e, but the system's total charge "
                         f"is {total_charge:g} e")
    return ids, targets


def _linear(model: PolarffModel, name: str, dtype: torch.dtype) -> torch.nn.Linear:
    kernel = model.weights[f"{name}/kernel"]
    bias = model.weights[f"{name}/bias"]
    layer = torch.nn.Linear(kernel.shape[0], kernel.shape[1], dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(kernel.T, dtype=dtype))
        layer.bias.copy_(torch.tensor(bias, dtype=dtype))
    return layer
