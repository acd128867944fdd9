"""Electrostatics of polarff in torch: permanent charges (Ewald/PME or direct sum) plus Thole induction.

Units are OpenMM's: positions and boxes in nm, charges in e, polarizabilities as volumes in nm^3,
dipoles in e·nm, fields in e/nm^2 (Gaussian-style, without 1/(4 pi eps0)), energies in kJ/mol.
The Coulomb constant is :data:`ONE_4PI_EPS0` = 138.935456 kJ mol^-1 nm e^-2; it is passed to torch-pme
explicitly (torch-pme's own kJ/mol prefactor assumes Å).

Permanent charges
    Periodic systems use Ewald or smooth-particle-mesh Ewald from torch-pme for the reciprocal part and
    a real-space sum of ``q_i q_j erfc(alpha r)/r`` over the vesin-torch pair list within ``cutoff_nm``
    (truncated, as OpenMM does). Excluded (intramolecular) pairs contribute nothing, like OpenMM
    exceptions with chargeProd 0: they are left out of the real-space sum and their reciprocal part
    ``q_i q_j erf(alpha r)/r`` (nearest image) is subtracted. Non-periodic systems use the exact direct
    sum over all non-excluded pairs (O(N^2), meant for clusters).

Induction (AMOEBA-style exponential Thole damping, ``u = r/(alpha_i alpha_j)^(1/6)``,
``lambda3 = 1 - exp(-a u^3)``, ``lambda5 = 1 - (1 + a u^3) exp(-a u^3)``; ``a = min(a_i, a_j)`` from
per-atom values, all equal to ``thole_a`` unless ``thole_per_atom`` is given)
    The permanent field at atom i from the charges of atoms not excluded from i is
    ``E_i = sum_j q_j lambda3 r_ij / r^3`` with ``r_ij = r_i - r_j``. The dipole field tensor couples all
    pairs (intramolecular included), ``T_ij = lambda5 3 r r^T / r^5 - lambda3 I / r^3``. Induced dipoles
    solve ``mu = alpha (E + T mu)``; the induction energy is
    ``U = -1/2 sum_i mu_i . E_i x ONE_4PI_EPS0``.

    **The polarising field is full range** (``induction_field="full"``, the default): ``E_i`` sums every
    non-excluded charge at any distance — an Ewald sum for periodic systems (real space with the energy's
    splitting parameter, the reciprocal part summed explicitly over k-vectors, the Thole factor applied as
    ``lambda3 - 1`` to the listed near pairs, the reciprocal part of excluded pairs removed), the direct sum
    otherwise. Undamped, it equals ``-dU_perm/dr_i / q_i`` of the Ewald energy (1.4e-7 relative at
    ``ewald_error_tolerance`` 1e-7; ``tests/test_runtime_electrostatics.py``), and the dipoles ``alpha E`` equal
    those of OpenMM's AMOEBA PME with direct polarization (2.6e-6; ``tests/test_openmm_native.py``). At the
    default tolerance 5e-4 its error is 1e-3 relative; it does not depend on the cutoff. The k-space sum is
    O(N K), K growing with the box volume; energy and forces of 64 or 128 waters with NaCl cost 1.19 times
    those with the switched field (one thread).

    **Approximation:** the dipole–dipole coupling ``T`` is real space only: it is multiplied by a smooth
    switch that goes from 1 at ``induction_cutoff_nm - induction_switch_width_nm`` to 0 at
    ``induction_cutoff_nm`` with zero first and second derivatives at both ends; pairs use the minimum image.
    There is no Ewald sum for the dipoles (the dipolar lattice sum is missing). On frames of 128 waters + 2 NaCl
    the induction energy changes by 0.3 kJ/mol per water between cutoffs of 0.45 and 0.77 nm.

    ``induction_field="switched"`` (polarff before 2026-11-22) cut the charges' field off atom by atom with the
    same switch. Molecules straddling the cutoff then act as net charges, and MD exploits it: along runs made
    with it the induction energy at the run's cutoff was -17.7 kJ/mol per water against -11 to -13 at any other
    cutoff, and -13.0 with the full field (docs/induction-field.md). Kept only to reproduce those runs.

    **Solver:** the symmetric form ``A nu = b`` with ``A = I - S T S``, ``S = diag(sqrt(alpha))``,
    ``b = S E`` and ``mu = S nu`` (conjugate gradients on ``(alpha^-1 - T) mu = E`` with the Jacobi
    preconditioner ``alpha^-1``) is solved matrix-free with a block-sparse (BSR, 3x3 blocks) copy of
    ``S T S`` built from the pair list, by a FIXED number K of conjugate-gradient iterations started from
    zero. The energy returned is the variational functional ``phi(nu) = 1/2 nu.A nu - b.nu`` at the CG
    iterate ``nu_K`` (for CG from zero this equals ``-1/2 mu.E`` up to round-off), times ONE_4PI_EPS0.
    It is a smooth, deterministic function of positions, charges and polarizabilities, and its error
    is quadratic in the solver error.

    **Exact forces:** CG makes ``nu_K`` the minimiser of ``phi`` over the Krylov space, so by the
    envelope theorem the derivative of ``phi(nu_K)`` equals its derivative with the CG step sizes held
    fixed. That derivative is computed by reverse-mode differentiation of the CG recursion
    (K more sparse matrix-vector products, no autograd graph through the iterations), and handed to
    autograd through a linear surrogate in the differentiable inputs (pair vectors, damping
    coefficients, sqrt(alpha), charges). So ``torch.autograd`` gives the exact gradient of the energy
    that is returned (tests check it against autograd straight through the iterations and against
    finite differences), which conserves energy in NVE even when the solve is not converged. Only first
    derivatives are exact. The solver copies are made with ``clone()`` under ``no_grad``, not with
    ``detach()``: ``torch.jit.freeze``, which openmm-torch applies to every TorchForce module, removes
    ``detach`` and merges identical expressions across ``no_grad`` regions.

    Measured on 214 waters + NaCl (polarizabilities O 0.837, H 0.496, Na 0.15, Cl 3.5 Å^3, 0.6 nm
    cutoff): relative residual ``|b - A nu| / |b|`` 1.1e-2, 1.2e-3, 1.4e-4, 1.5e-5 after 4, 6, 8, 10
    iterations, relative induction-energy error 1.6e-4, 1.8e-6, 2.4e-8, 3e-10.
    :meth:`Electrostatics.induction_residual` reports the residual for any configuration.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from polarff.errors import ConfigError
from polarff.runtime.neighbors import PairList, minimum_image, normalize_exclusions

#: Coulomb constant 1/(4 pi eps0) in kJ mol^-1 nm e^-2 (OpenMM's ONE_4PI_EPS0).
ONE_4PI_EPS0 = 138.935456

#: Lower bound on alpha_i alpha_j (nm^6) and alpha_i (nm^3) so that zero polarizabilities stay finite.
_TINY_POLARIZABILITY = 1.0e-12

_METHODS = ("pme", "ewald")

#: How the permanent charges' field that polarises the atoms is summed (see the module docstring).
_INDUCTION_FIELDS = ("full", "switched")


def ewald_parameters(cutoff_nm: float, error_tolerance: float) -> Dict[str, float]:
    """Ewald splitting and reciprocal-space resolution for a target relative error.

    Follows OpenMM's conventions: ``alpha = sqrt(-ln(2 delta)) / r_c``; the PME grid spacing is
    OpenMM's ``3 delta^(1/5) / (2 alpha)`` and the Ewald k-space cutoff is ``2 alpha sqrt(-ln delta)``.

    Parameters
    ----------
    cutoff_nm : float
        Real-space cutoff, nm.
    error_tolerance : float
        Target relative force error ``delta`` (OpenMM's ``ewaldErrorTolerance``), 0 < delta < 0.5.

    Returns
    -------
    dict of str to float
        ``alpha`` (nm^-1), ``smearing`` (torch-pme's Gaussian width ``1/(sqrt(2) alpha)``, nm),
        ``lr_wavelength`` (shortest kept wavelength for torch-pme Ewald, nm) and ``mesh_spacing``
        (torch-pme's PME mesh parameter, nm; torch-pme uses about ``2 L / mesh_spacing`` points, rounded up
        to a power of two, hence twice OpenMM's spacing here).
    """
    alpha = math.sqrt(-math.log(2.0 * error_tolerance)) / cutoff_nm
    k_cutoff = 2.0 * alpha * math.sqrt(-math.log(error_tolerance))
    openmm_spacing = 3.0 * error_tolerance ** 0.2 / (2.0 * alpha)
    return {
        "alpha": alpha,
        "smearing": 1.0 / (math.sqrt(2.0) * alpha),
        "lr_wavelength": math.pi / k_cutoff,
        "mesh_spacing": 2.0 * openmm_spacing,
    }


def smooth_switch(distances: torch.Tensor, switch_start: float, cutoff: float) -> torch.Tensor:
    """Quintic switch: 1 below ``switch_start``, 0 from ``cutoff`` on, C2-continuous in between.

    Parameters
    ----------
    distances : torch.Tensor
        Pair distances, nm.
    switch_start, cutoff : float
        Where the switch starts to fall and where it reaches zero, nm.

    Returns
    -------
    torch.Tensor
        ``1 - 10 x^3 + 15 x^4 - 6 x^5`` with ``x = clamp((r - start)/(cutoff - start), 0, 1)``.
    """
    x = ((distances - switch_start) / (cutoff - switch_start)).clamp(0.0, 1.0)
    return 1.0 - x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


def thole_damping(distances: torch.Tensor, polarizability_i: torch.Tensor,
                  polarizability_j: torch.Tensor, thole_a: torch.Tensor
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """AMOEBA exponential Thole damping factors of the charge field and of the dipole tensor.

    Parameters
    ----------
    distances : torch.Tensor
        Pair distances r, nm.
    polarizability_i, polarizability_j : torch.Tensor
        Isotropic polarizabilities of the two atoms, nm^3.
    thole_a : torch.Tensor
        Dimensionless damping strength a of each pair (or one value for all, a 0-d tensor).

    Returns
    -------
    lambda3, lambda5 : torch.Tensor
        ``1 - exp(-a u^3)`` and ``1 - (1 + a u^3) exp(-a u^3)`` with ``u = r/(alpha_i alpha_j)^(1/6)``.
    """
    product = (polarizability_i * polarizability_j).clamp(min=1.0e-12)  # _TINY_POLARIZABILITY
    au3 = thole_a * distances * distances * distances / torch.sqrt(product)
    decay = torch.exp(-au3)
    return 1.0 - decay, 1.0 - (1.0 + au3) * decay


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``table[index]`` of a 2-D table, shape (len(index), table.shape[1]).

    Same values as ``table.index_select(0, index)``, written with ``torch.gather`` because torch's CPU
    ``index_select`` is up to 4x slower for float64 rows of 9-27 values when indices repeat (a sorted
    pair list: 4.1 ms against 0.95 ms for 1e5 pairs of 27 values), which made the induction adjoint
    gather-bound. Differentiable in ``table``.
    """
    return torch.gather(table, 0, index.unsqueeze(1).expand(index.shape[0], table.shape[1]))


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, and 0 where the denominator is exactly 0."""
    nonzero = denominator != 0
    safe = torch.where(nonzero, denominator, torch.ones_like(denominator))
    return torch.where(nonzero, numerator / safe, torch.zeros_like(numerator))


def dipole_blocks(vectors: torch.Tensor, coef3: torch.Tensor, coef5: torch.Tensor) -> torch.Tensor:
    """3x3 dipole-field blocks ``coef5 r r^T - coef3 I`` of each pair, shape (P, 3, 3).

    Parameters
    ----------
    vectors : torch.Tensor
        Shape (P, 3), pair vectors, nm (the sign does not matter).
    coef3, coef5 : torch.Tensor
        Shape (P,): ``S lambda3 / r^3`` (nm^-3) and ``3 S lambda5 / r^5`` (nm^-5).
    """
    outer = coef5.view(-1, 1, 1) * vectors.unsqueeze(2) * vectors.unsqueeze(1)
    eye = torch.eye(3, dtype=vectors.dtype, device=vectors.device).unsqueeze(0)
    return outer - coef3.view(-1, 1, 1) * eye


def coupling_matrix(i: torch.Tensor, j: torch.Tensor, blocks: torch.Tensor, n_atoms: int
                    ) -> torch.Tensor:
    """Block-sparse (BSR) symmetric matrix with block ``blocks[p]`` at (i_p, j_p) and (j_p, i_p).

    Parameters
    ----------
    i, j : torch.Tensor
        Long, shape (P,), a half pair list (each unordered pair once, i != j).
    blocks : torch.Tensor
        Shape (P, 3, 3), symmetric blocks.
    n_atoms : int
        Number of atoms N.

    Returns
    -------
    torch.Tensor
        Sparse BSR tensor of shape (3N, 3N) with 3x3 blocks (not differentiable).
    """
    n_pairs = i.shape[0]
    rows, order = torch.sort(torch.cat([i, j]).to(torch.int32))
    order = order.to(torch.long)
    first_half = order < n_pairs
    half_index = torch.where(first_half, order, order - n_pairs)
    columns = torch.where(first_half, j.index_select(0, half_index), i.index_select(0, half_index))
    values = gather_rows(blocks.reshape(n_pairs, 9), half_index).view(-1, 3, 3)
    counts = torch.bincount(rows, minlength=n_atoms)
    row_pointers = torch.cat([torch.zeros(1, dtype=counts.dtype, device=counts.device),
                              torch.cumsum(counts, 0)])
    return torch.sparse_bsr_tensor(row_pointers, columns, values, size=(3 * n_atoms, 3 * n_atoms),
                                   dtype=blocks.dtype, device=blocks.device)


def apply_induction_operator(coupling: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``(I - C) v`` for the scaled coupling ``C = S T S`` in BSR form and v of shape (N, 3)."""
    return vectors - torch.mm(coupling, vectors.reshape(-1, 1)).reshape(-1, 3)


def conjugate_gradient_with_adjoint(coupling: torch.Tensor, rhs: torch.Tensor, n_iterations: int
                                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                               torch.Tensor, torch.Tensor]:
    """Fixed-iteration CG for ``(I - C) x = b`` and the adjoint sensitivities of its energy.

    The energy is the variational functional ``phi(x) = 1/2 x.(I - C)x - b.x`` at the CG iterate
    ``x_K``. CG makes ``x_K`` the minimiser of ``phi`` over the Krylov space, so (envelope theorem)
    the derivative of ``phi(x_K)`` equals the derivative at a fixed CG polynomial (fixed step sizes).
    That derivative is accumulated here by reverse-mode differentiation of the CG recursion with its
    step sizes held fixed:

    ``d phi = sum_m u_m^T dA v_m + h^T db`` with ``A = I - C``.

    Parameters
    ----------
    coupling : torch.Tensor
        Sparse (3N, 3N) matrix ``C``.
    rhs : torch.Tensor
        Shape (N, 3), ``b``.
    n_iterations : int
        Number of CG iterations K.

    Returns
    -------
    solution : torch.Tensor
        Shape (N, 3), ``x_K``.
    energy : torch.Tensor
        0-d, ``phi(x_K)``.
    left, right : torch.Tensor
        Shape (K + 1, N, 3), the vectors ``u_m`` and ``v_m``.
    rhs_sensitivity : torch.Tensor
        Shape (N, 3), ``h = d phi / d b``.
    """
    solution = torch.zeros_like(rhs)
    residual = rhs
    direction = rhs
    residual_norm2 = (residual * residual).sum()
    directions: List[torch.Tensor] = []
    steps: List[torch.Tensor] = []
    ratios: List[torch.Tensor] = []
    for _ in range(n_iterations):
        operator_direction = apply_induction_operator(coupling, direction)
        step = _safe_divide(residual_norm2, (direction * operator_direction).sum())
        solution = solution + step * direction
        residual = residual - step * operator_direction
        new_norm2 = (residual * residual).sum()
        ratio = _safe_divide(new_norm2, residual_norm2)
        directions.append(direction)
        steps.append(step)
        ratios.append(ratio)
        direction = residual + ratio * direction
        residual_norm2 = new_norm2
    # phi(x) = 1/2 x.(A x) - b.x with A x = b - r
    energy = -0.5 * (rhs * solution).sum() - 0.5 * (solution * residual).sum()
    gradient = -residual  # d phi / d x at x_K
    # reverse pass over the recursion with fixed steps and ratios
    residual_adjoint = torch.zeros_like(rhs)
    direction_adjoint = torch.zeros_like(rhs)
    left: List[torch.Tensor] = [solution]
    right: List[torch.Tensor] = [0.5 * solution]
    for k in range(n_iterations - 1, -1, -1):
        residual_adjoint = residual_adjoint + direction_adjoint
        product_adjoint = -steps[k] * residual_adjoint
        direction_adjoint = (ratios[k] * direction_adjoint + steps[k] * gradient
                             + apply_induction_operator(coupling, product_adjoint))
        left.append(product_adjoint)
        right.append(directions[k])
    rhs_sensitivity = residual_adjoint + direction_adjoint - solution
    return solution, energy, torch.stack(left), torch.stack(right), rhs_sensitivity


def pair_contractions(left: torch.Tensor, right: torch.Tensor, i: torch.Tensor, j: torch.Tensor
                      ) -> torch.Tensor:
    """Per-pair matrices ``Q_p = sum_m (u_m,i v_m,j^T + u_m,j v_m,i^T)``, shape (P, 3, 3).

    Parameters
    ----------
    left, right : torch.Tensor
        Shape (M, N, 3), the vectors ``u_m`` and ``v_m``.
    i, j : torch.Tensor
        Long, shape (P,), half pair list.
    """
    n_vectors, n_atoms = left.shape[0], left.shape[1]
    n_pairs = i.shape[0]
    # rows of (3, M) and (M, 3) per atom so that a gathered row is one pair's matrix
    left_rows = left.permute(1, 2, 0).reshape(n_atoms, 3 * n_vectors)
    right_rows = right.permute(1, 0, 2).reshape(n_atoms, n_vectors * 3)
    left_i = gather_rows(left_rows, i).view(n_pairs, 3, n_vectors)
    left_j = gather_rows(left_rows, j).view(n_pairs, 3, n_vectors)
    right_i = gather_rows(right_rows, i).view(n_pairs, n_vectors, 3)
    right_j = gather_rows(right_rows, j).view(n_pairs, n_vectors, 3)
    return torch.baddbmm(torch.bmm(left_i, right_j), left_j, right_i)


class Electrostatics(torch.nn.Module):
    """Permanent-charge electrostatics plus Thole-damped induction, TorchScript-compatible.

    Parameters
    ----------
    n_atoms : int
        Number of atoms.
    exclusions : array_like of int, shape (P, 2)
        Intramolecular pairs with no permanent-charge interaction (any order, duplicates allowed).
    periodic : bool
        Periodic boundary conditions (Ewald/PME) or an isolated system (direct sum).
    cutoff_nm : float, optional
        Real-space cutoff of the permanent-charge Ewald sum, nm (unused when not periodic). The
        accuracy is set by ``ewald_error_tolerance``, not by the cutoff; a short cutoff is cheaper
        in torch. Must not exceed half the smallest box width.
    method : {'pme', 'ewald'}, optional
        Reciprocal-space method for periodic systems (torch-pme ``PMECalculator`` or
        ``EwaldCalculator``).
    ewald_error_tolerance : float, optional
        Target relative error, OpenMM's ``ewaldErrorTolerance``; sets the splitting parameter and the
        mesh/k-space resolution through :func:`ewald_parameters`.
    pme_interpolation_nodes : int, optional
        Lagrange interpolation nodes per axis for PME (3 to 7; 5 matches OpenMM's accuracy at equal
        tolerance, 4 is faster and about 10x less accurate).
    thole_a : float, optional
        Thole damping strength a (dimensionless) of every atom.
    thole_per_atom : sequence of float, optional
        Per-atom Thole strengths (N,), replacing ``thole_a``; a pair uses ``min(a_i, a_j)`` (AMOEBA's rule),
        so an atom with a small value damps all its pairs more strongly.
    induction : bool, optional
        Whether to add the induction energy.
    induction_cutoff_nm : float, optional
        Cutoff of the dipole–dipole coupling (and of the charges' field when ``induction_field`` is
        ``switched``), nm, periodic and non-periodic.
    induction_switch_width_nm : float, optional
        Width of the smooth switch that ends at ``induction_cutoff_nm``, nm.
    n_induction_iterations : int, optional
        Fixed number of conjugate-gradient iterations of the dipole solve.
    induction_field : {'full', 'switched'}, optional
        The permanent charges' field that polarises the atoms: ``full`` (Ewald or direct sum, every pair)
        or ``switched`` (pairs inside ``induction_cutoff_nm``, switched off smoothly; earlier versions,
        an artifact-prone approximation kept to reproduce old runs).

    Raises
    ------
    ConfigError
        For an invalid option value.
    InputError
        For a malformed exclusion list.

    Notes
    -----
    Inputs of :meth:`forward`: positions (N, 3) nm, box (3, 3) nm (rows are lattice vectors; any
    (3, 3) tensor when not periodic), charges (N,) e, polarizabilities (N,) nm^3. Returns the energy in
    kJ/mol; forces are ``-d energy / d positions`` by autograd, including the dependence of charges and
    polarizabilities on positions when those were computed from positions. Only first derivatives are
    exact (the induction term uses an adjoint surrogate for its gradient; do not differentiate twice).
    Work in float64 on CPU (OpenMM's CPU and Reference platforms hand TorchForce float64 positions).
    """

    def __init__(self, n_atoms: int, exclusions: object, periodic: bool, cutoff_nm: float = 0.6,
                 method: str = "pme", ewald_error_tolerance: float = 5.0e-4,
                 pme_interpolation_nodes: int = 5, thole_a: float = 0.39, induction: bool = True,
                 induction_cutoff_nm: float = 0.6, induction_switch_width_nm: float = 0.1,
                 n_induction_iterations: int = 8, thole_per_atom: Optional[Sequence[float]] = None,
                 induction_field: str = "full"):
        super().__init__()
        _check_options(n_atoms, cutoff_nm, method, ewald_error_tolerance, pme_interpolation_nodes,
                       thole_a, induction_cutoff_nm, induction_switch_width_nm,
                       n_induction_iterations)
        if induction_field not in _INDUCTION_FIELDS:
            raise ConfigError(f"invalid electrostatics option 'induction_field' (expected one of "
                              f"{', '.join(_INDUCTION_FIELDS)}, found {induction_field!r})")
        thole = [float(thole_a)] * int(n_atoms) if thole_per_atom is None else [float(a) for a in thole_per_atom]
        if len(thole) != n_atoms or not all(math.isfinite(a) and a > 0 for a in thole):
            raise ConfigError(f"invalid electrostatics option 'thole_per_atom' (expected {n_atoms} finite "
                              f"values > 0, found {len(thole)} with min {min(thole, default=float('nan'))!r})")
        self.n_atoms = int(n_atoms)
        self.coulomb_constant = ONE_4PI_EPS0
        self.smallest_polarizability = _TINY_POLARIZABILITY
        self.periodic = bool(periodic)
        self.cutoff_nm = float(cutoff_nm)
        self.method = method
        self.thole_a = float(thole_a)
        self.register_buffer("thole", torch.tensor(thole, dtype=torch.float64))
        self.induction = bool(induction)
        self.induction_cutoff_nm = float(induction_cutoff_nm)
        self.induction_switch_start_nm = float(induction_cutoff_nm - induction_switch_width_nm)
        self.n_induction_iterations = int(n_induction_iterations)
        self.full_field = induction_field == "full"

        canonical = normalize_exclusions(exclusions, self.n_atoms)
        self.register_buffer("exclusions", canonical)
        self.uses_pair_list = self.periodic or self.induction
        list_cutoff = self.induction_cutoff_nm if self.induction else 0.0
        if self.periodic:
            list_cutoff = max(list_cutoff, self.cutoff_nm)
        self.pair_list_cutoff_nm = list_cutoff
        self.pairs = PairList(self.n_atoms, max(list_cutoff, 1e-3), self.periodic, canonical)

        parameters = ewald_parameters(self.cutoff_nm, ewald_error_tolerance)
        self.ewald_alpha = float(parameters["alpha"])
        # k-space cutoff of the field's explicit sum, 2 alpha sqrt(-ln tolerance): at OpenMM's default tolerance
        # the field's error (1e-3 relative) is then the real-space truncation's, as with twice this cutoff
        self.ewald_k_cutoff = math.pi / float(parameters["lr_wavelength"])
        self.kspace = _make_kspace_calculator(method, parameters, pme_interpolation_nodes)

    def forward(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor,
                polarizabilities: torch.Tensor) -> torch.Tensor:
        """Total electrostatic energy (permanent + induction), kJ/mol (0-d tensor).

        Parameters
        ----------
        positions : torch.Tensor
            Shape (N, 3), nm.
        box : torch.Tensor
            Shape (3, 3), lattice vectors as rows, nm (ignored when not periodic).
        charges : torch.Tensor
            Shape (N,), e (should sum to zero; a net charge gets torch-pme's neutralising background).
        polarizabilities : torch.Tensor
            Shape (N,), nm^3, non-negative.
        """
        terms = self.energy_components(positions, box, charges, polarizabilities)
        return terms["permanent"] + terms["induction"]

    @torch.jit.export
    def energy_components(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor,
                          polarizabilities: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Energy terms in kJ/mol: ``permanent`` (charge-charge) and ``induction`` (0 when disabled)."""
        self._check_inputs(positions, box, charges, polarizabilities)
        box = box.to(positions.dtype)
        charges = charges.to(positions.dtype)
        polarizabilities = polarizabilities.to(positions.dtype)
        i, j, vectors, distances, excluded = self._pair_list(positions, box)
        if self.periodic:
            permanent = self._ewald_energy(positions, box, charges, i, j, distances, excluded)
        else:
            permanent = self._direct_energy(positions, charges)
        induction = torch.zeros((), dtype=positions.dtype, device=positions.device)
        if self.induction:
            induction, _, _ = self._induction(positions, box, charges, polarizabilities, i, j, vectors,
                                              distances, excluded)
        return {"permanent": permanent, "induction": induction}

    @torch.jit.export
    def induced_dipoles(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor,
                        polarizabilities: torch.Tensor) -> torch.Tensor:
        """Induced dipoles after the fixed number of CG iterations, shape (N, 3), e·nm (no gradient)."""
        return self._solve_induction(positions, box, charges, polarizabilities)[1]

    @torch.jit.export
    def induction_residual(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor,
                           polarizabilities: torch.Tensor) -> torch.Tensor:
        """Relative residual ``|S E - (I - S T S) nu| / |S E|`` of the dipole solve (0-d tensor)."""
        return self._solve_induction(positions, box, charges, polarizabilities)[2]

    def _solve_induction(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor,
                         polarizabilities: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Checked inputs → pair list → :meth:`_induction` (energy, dipoles, residual)."""
        self._check_inputs(positions, box, charges, polarizabilities)
        box = box.to(positions.dtype)
        i, j, vectors, distances, excluded = self._pair_list(positions, box)
        return self._induction(positions, box, charges.to(positions.dtype), polarizabilities.to(positions.dtype),
                               i, j, vectors, distances, excluded)

    @torch.jit.export
    def permanent_field(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor,
                        polarizabilities: torch.Tensor) -> torch.Tensor:
        """Thole-damped field of the permanent charges at each atom (the one that polarises it), shape
        (N, 3), e/nm^2: full range (Ewald or direct sum) or switched off at the induction cutoff."""
        self._check_inputs(positions, box, charges, polarizabilities)
        box = box.to(positions.dtype)
        i, j, vectors, distances, excluded = self._pair_list(positions, box)
        return self._polarizing_field(positions, box, charges.to(positions.dtype),
                                      polarizabilities.to(positions.dtype), i, j, vectors, distances, excluded)

    def _check_inputs(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor,
                      polarizabilities: torch.Tensor) -> None:
        if positions.shape != (self.n_atoms, 3):
            raise ValueError("positions must have shape (" + str(self.n_atoms) + ", 3), found "
                             + str(positions.shape))
        if box.shape != (3, 3):
            raise ValueError("box must have shape (3, 3), found " + str(box.shape))
        if charges.shape != (self.n_atoms,):
            raise ValueError("charges must have shape (" + str(self.n_atoms) + ",), found "
                             + str(charges.shape))
        if polarizabilities.shape != (self.n_atoms,):
            raise ValueError("polarizabilities must have shape (" + str(self.n_atoms)
                             + ",), found " + str(polarizabilities.shape))

    def _pair_list(self, positions: torch.Tensor, box: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.uses_pair_list:
            return self.pairs(positions, box)
        empty_index = torch.zeros((0,), dtype=torch.long, device=positions.device)
        empty = torch.zeros((0,), dtype=positions.dtype, device=positions.device)
        return (empty_index, empty_index, torch.zeros((0, 3), dtype=positions.dtype,
                                                      device=positions.device),
                empty, torch.zeros((0,), dtype=torch.bool, device=positions.device))

    def _ewald_energy(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor,
                      i: torch.Tensor, j: torch.Tensor, distances: torch.Tensor,
                      excluded: torch.Tensor) -> torch.Tensor:
        # real space: non-excluded pairs inside the (truncating) cutoff
        keep = (~excluded) & (distances < self.cutoff_nm)
        pair_energy = charges[i] * charges[j] * torch.erfc(self.ewald_alpha * distances) / distances
        real = (pair_energy * keep.to(distances.dtype)).sum()
        # reciprocal space (with self term) from torch-pme, for all pairs
        no_index = torch.zeros((0, 2), dtype=torch.long, device=positions.device)
        no_distance = torch.zeros((0,), dtype=positions.dtype, device=positions.device)
        potential = self.kspace(charges.unsqueeze(1), box, positions, no_index, no_distance)
        reciprocal = (charges.unsqueeze(1) * potential).sum()
        # remove the reciprocal part of excluded pairs (nearest image)
        first, second = self.exclusions[:, 0], self.exclusions[:, 1]
        excluded_vectors = minimum_image(positions[second] - positions[first], box)
        excluded_distances = torch.linalg.norm(excluded_vectors, dim=1)
        correction = (charges[first] * charges[second]
                      * torch.erf(self.ewald_alpha * excluded_distances) / excluded_distances).sum()
        return self.coulomb_constant * (real - correction) + reciprocal

    def _direct_energy(self, positions: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        upper = torch.triu_indices(self.n_atoms, self.n_atoms, 1, device=positions.device)
        first, second = upper[0], upper[1]
        distances = torch.linalg.norm(positions[second] - positions[first], dim=1)
        total = (charges[first] * charges[second] / distances).sum()
        first, second = self.exclusions[:, 0], self.exclusions[:, 1]
        excluded_distances = torch.linalg.norm(positions[second] - positions[first], dim=1)
        intramolecular = (charges[first] * charges[second] / excluded_distances).sum()
        return self.coulomb_constant * (total - intramolecular)

    def _induction_pairs(self, polarizabilities: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
                         vectors: torch.Tensor, distances: torch.Tensor, excluded: torch.Tensor
                         ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                    torch.Tensor, torch.Tensor]:
        """Pairs inside the induction cutoff with their coefficients (differentiable).

        Returns i, j, vectors (r_j - r_i), coef3 = S lambda3 / r^3, coef5 = 3 S lambda5 / r^5 and
        allowed (1.0 for pairs whose charges polarise each other, 0.0 for excluded pairs).
        """
        if self.pair_list_cutoff_nm > self.induction_cutoff_nm:
            inside = distances < self.induction_cutoff_nm
            i, j, vectors, distances, excluded = (i[inside], j[inside], vectors[inside],
                                                  distances[inside], excluded[inside])
        switch = smooth_switch(distances, self.induction_switch_start_nm, self.induction_cutoff_nm)
        thole = torch.minimum(self.thole[i], self.thole[j]).to(distances.dtype)
        lambda3, lambda5 = thole_damping(distances, polarizabilities[i], polarizabilities[j], thole)
        inverse = 1.0 / distances
        inverse3 = inverse * inverse * inverse
        coef3 = switch * lambda3 * inverse3
        coef5 = 3.0 * switch * lambda5 * inverse3 * inverse * inverse
        allowed = (~excluded).to(coef3.dtype)
        return i, j, vectors, coef3, coef5, allowed

    def _polarizing_field(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor,
                          polarizabilities: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
                          vectors: torch.Tensor, distances: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
        """Thole-damped field of the permanent charges of non-excluded atoms, (N, 3) e/nm^2 (differentiable).

        ``full``: every pair at any distance, ``E_i = sum_j q_j lambda3 (r_i - r_j) / r^3`` — an Ewald sum
        (real space with the energy's splitting parameter, reciprocal space summed over k-vectors, the
        reciprocal part of excluded pairs removed, ``lambda3 - 1`` added for listed pairs) when periodic, the
        direct sum otherwise. ``switched``: pairs inside the induction cutoff only, times the smooth switch.
        """
        if not self.full_field:
            i, j, vectors, coef3, _, allowed = self._induction_pairs(polarizabilities, i, j, vectors, distances,
                                                                    excluded)
            return _charge_field(charges, i, j, vectors, coef3 * allowed, self.n_atoms)
        first, second = self.exclusions[:, 0], self.exclusions[:, 1]
        if not self.periodic:
            upper = torch.triu_indices(self.n_atoms, self.n_atoms, 1, device=positions.device)
            a, b = upper[0], upper[1]
            pair_vectors = positions[b] - positions[a]
            r = torch.linalg.norm(pair_vectors, dim=1)
            thole = torch.minimum(self.thole[a], self.thole[b]).to(r.dtype)
            lambda3, _ = thole_damping(r, polarizabilities[a], polarizabilities[b], thole)
            field = _charge_field(charges, a, b, pair_vectors, lambda3 / (r * r * r), self.n_atoms)
            excluded_vectors = positions[second] - positions[first]
            re = torch.linalg.norm(excluded_vectors, dim=1)
            thole_e = torch.minimum(self.thole[first], self.thole[second]).to(re.dtype)
            lambda3_e, _ = thole_damping(re, polarizabilities[first], polarizabilities[second], thole_e)
            return field - _charge_field(charges, first, second, excluded_vectors, lambda3_e / (re * re * re),
                                         self.n_atoms)
        # real space: erfc-screened Coulomb field of non-excluded pairs inside the cutoff, and the Thole
        # damping (lambda3 - 1 decays as exp(-a u^3): all listed pairs)
        alpha = self.ewald_alpha
        ar = alpha * distances
        screened = (torch.erfc(ar) + (2.0 / math.sqrt(math.pi)) * ar * torch.exp(-ar * ar)) \
            * (distances < self.cutoff_nm).to(distances.dtype)
        thole = torch.minimum(self.thole[i], self.thole[j]).to(distances.dtype)
        lambda3, _ = thole_damping(distances, polarizabilities[i], polarizabilities[j], thole)
        coef = (screened + lambda3 - 1.0) * (~excluded).to(distances.dtype) / (distances * distances * distances)
        field = _charge_field(charges, i, j, vectors, coef, self.n_atoms)
        # the reciprocal sum includes excluded pairs (nearest image): remove their erf-screened field
        excluded_vectors = minimum_image(positions[second] - positions[first], box)
        re = torch.linalg.norm(excluded_vectors, dim=1)
        are = alpha * re
        smooth = torch.erf(are) - (2.0 / math.sqrt(math.pi)) * are * torch.exp(-are * are)
        field = field - _charge_field(charges, first, second, excluded_vectors, smooth / (re * re * re),
                                      self.n_atoms)
        return field + self._reciprocal_field(positions, box, charges)

    def _reciprocal_field(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor
                          ) -> torch.Tensor:
        """Reciprocal-space Ewald field, (N, 3) e/nm^2, summed over k-vectors with |k| below the k-space
        cutoff of :func:`ewald_parameters` (half space, times 2):
        ``E(r_i) = (8 pi / V) sum_k exp(-k^2 / 4 alpha^2) / k^2 k [sin(k.r_i) C(k) - cos(k.r_i) S(k)]``
        with ``C, S = sum_j q_j cos, sin(k.r_j)``. Cost O(N K); K grows with the box volume."""
        reciprocal = 2.0 * math.pi * torch.linalg.inv(box).transpose(0, 1)  # rows b_d, a_c . b_d = 2 pi delta
        k_cut = self.ewald_k_cutoff
        lengths = torch.linalg.norm(box, dim=1)
        n_max = [int(math.ceil(k_cut * float(lengths[d]) / (2.0 * math.pi))) for d in range(3)]
        ranges = [torch.arange(-n, n + 1, device=positions.device) for n in n_max]
        grid = torch.cartesian_prod(ranges[0], ranges[1], ranges[2])
        half = (grid[:, 0] > 0) | ((grid[:, 0] == 0) & (grid[:, 1] > 0)) \
            | ((grid[:, 0] == 0) & (grid[:, 1] == 0) & (grid[:, 2] > 0))
        k = grid[half].to(positions.dtype) @ reciprocal
        k2 = (k * k).sum(1)
        inside = k2 < k_cut * k_cut
        k, k2 = k[inside], k2[inside]
        weight = torch.exp(-k2 / (4.0 * self.ewald_alpha * self.ewald_alpha)) / k2
        phase = positions @ k.transpose(0, 1)  # (N, K)
        cosine, sine = torch.cos(phase), torch.sin(phase)
        c_k, s_k = charges @ cosine, charges @ sine
        volume = torch.abs(torch.linalg.det(box))
        amplitude = (sine * c_k - cosine * s_k) * weight  # (N, K)
        return (8.0 * math.pi / volume) * (amplitude @ k)

    def _induction(self, positions: torch.Tensor, box: torch.Tensor, charges: torch.Tensor,
                   polarizabilities: torch.Tensor, i: torch.Tensor, j: torch.Tensor, vectors: torch.Tensor,
                   distances: torch.Tensor, excluded: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Induction energy (kJ/mol, exact first derivatives), induced dipoles and solver residual."""
        field = self._polarizing_field(positions, box, charges, polarizabilities, i, j, vectors, distances,
                                       excluded)
        i, j, vectors, coef3, coef5, _ = self._induction_pairs(
            polarizabilities, i, j, vectors, distances, excluded)
        scale = torch.sqrt(polarizabilities.clamp(min=self.smallest_polarizability))
        # The solve runs on gradient-free copies. `detach()` and values computed inside `no_grad`
        # from the same inputs are unsafe here: torch.jit.freeze (applied by openmm-torch) removes
        # detach and merges identical expressions across no_grad regions.
        fixed_vectors = _gradient_free_copy(vectors)
        fixed_coef3 = _gradient_free_copy(coef3)
        fixed_coef5 = _gradient_free_copy(coef5)
        fixed_scale = _gradient_free_copy(scale)
        fixed_field = _gradient_free_copy(field)
        rhs = fixed_scale.unsqueeze(1) * fixed_field
        scale_i, scale_j = fixed_scale.index_select(0, i), fixed_scale.index_select(0, j)
        pair_scale = scale_i * scale_j
        coupling = coupling_matrix(i, j, dipole_blocks(fixed_vectors, fixed_coef3 * pair_scale,
                                                       fixed_coef5 * pair_scale), self.n_atoms)
        solution, energy, left, right, rhs_sensitivity = conjugate_gradient_with_adjoint(
            coupling, rhs, self.n_induction_iterations)
        residual = apply_induction_operator(coupling, solution) - rhs
        relative_residual = torch.linalg.norm(residual) / torch.linalg.norm(rhs).clamp(min=1e-300)

        # First derivatives of `energy` at fixed CG step sizes (exact by the envelope theorem, see the
        # module docstring). The right-hand side b_i = s_i E_i enters through h^T db, h = rhs_sensitivity,
        # with autograd through E (charges, positions, damping); the coupling through
        # dA = -d(S T S): sum_m u_m^T dA v_m = -sum_pairs d(s_i s_j B_p) : Q_p.
        contraction = pair_contractions(left, right, i, j)
        trace = contraction.diagonal(dim1=1, dim2=2).sum(1)
        symmetric_dot = ((contraction + contraction.transpose(1, 2))
                         * fixed_vectors.unsqueeze(1)).sum(2)  # (Q + Q^T) d
        quadratic = 0.5 * (symmetric_dot * fixed_vectors).sum(1)  # d^T Q d
        coupling_strength = fixed_coef3 * trace - fixed_coef5 * quadratic
        d_coef5 = -pair_scale * quadratic
        d_coef3 = pair_scale * trace
        d_vectors = -(pair_scale * fixed_coef5).unsqueeze(1) * symmetric_dot
        d_scale_i = coupling_strength * scale_j
        d_scale_j = coupling_strength * scale_i
        d_scale = torch.zeros_like(fixed_scale).index_add(0, i, d_scale_i).index_add(0, j, d_scale_j)
        rhs_part = (rhs_sensitivity * (scale.unsqueeze(1) * field)).sum()
        surrogate = ((d_coef5 * coef5).sum() + (d_coef3 * coef3).sum() + (d_vectors * vectors).sum()
                     + (d_scale * scale).sum() + rhs_part)
        total = energy + surrogate - _gradient_free_copy(surrogate)
        dipoles = fixed_scale.unsqueeze(1) * solution
        return self.coulomb_constant * total, dipoles, relative_residual


def _gradient_free_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of ``tensor`` outside the autograd graph that survives torch.jit.freeze."""
    with torch.no_grad():
        copy = tensor.clone()
    return copy


def _charge_field(charges: torch.Tensor, i: torch.Tensor, j: torch.Tensor, vectors: torch.Tensor,
                  field_coef: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Field ``E_i = sum_j q_j c_ij (r_i - r_j)`` over a half pair list (c = damped, switched 1/r^3)."""
    at_i = (-charges[j] * field_coef).unsqueeze(1) * vectors
    at_j = (charges[i] * field_coef).unsqueeze(1) * vectors
    field = torch.zeros((n_atoms, 3), dtype=vectors.dtype, device=vectors.device)
    return field.index_add(0, i, at_i).index_add(0, j, at_j)


def _check_options(n_atoms: int, cutoff_nm: float, method: str, ewald_error_tolerance: float,
                   pme_interpolation_nodes: int, thole_a: float, induction_cutoff_nm: float,
                   induction_switch_width_nm: float, n_induction_iterations: int) -> None:
    """Raise ConfigError for option values :class:`Electrostatics` cannot use."""
    checks = [
        (int(n_atoms) == n_atoms and n_atoms >= 1, "n_atoms", "a positive integer", n_atoms),
        (cutoff_nm > 0, "cutoff_nm", "> 0", cutoff_nm),
        (method in _METHODS, "method", " or ".join(_METHODS), method),
        (0 < ewald_error_tolerance < 0.5, "ewald_error_tolerance", "in (0, 0.5)",
         ewald_error_tolerance),
        (pme_interpolation_nodes in (3, 4, 5, 6, 7), "pme_interpolation_nodes", "3 to 7",
         pme_interpolation_nodes),
        (thole_a > 0, "thole_a", "> 0", thole_a),
        (induction_cutoff_nm > 0, "induction_cutoff_nm", "> 0", induction_cutoff_nm),
        (0 < induction_switch_width_nm <= induction_cutoff_nm, "induction_switch_width_nm",
         f"in (0, induction_cutoff_nm={induction_cutoff_nm}]", induction_switch_width_nm),
        (int(n_induction_iterations) == n_induction_iterations and n_induction_iterations >= 1,
         "n_induction_iterations", "a positive integer", n_induction_iterations),
    ]
    for ok, name, expected, found in checks:
        if not ok:
            raise ConfigError(f"invalid electrostatics option '{name}' (expected {expected}, "
                              f"found {found!r})")


def _make_kspace_calculator(method: str, parameters: Dict[str, float],
                            interpolation_nodes: int) -> torch.nn.Module:
    """torch-pme reciprocal-space calculator in kJ/mol with nm (prefactor ONE_4PI_EPS0)."""
    import torchpme

    potential = torchpme.CoulombPotential(smearing=parameters["smearing"], prefactor=ONE_4PI_EPS0)
    if method == "ewald":
        return torchpme.EwaldCalculator(potential, lr_wavelength=parameters["lr_wavelength"])
    return torchpme.PMECalculator(potential, mesh_spacing=parameters["mesh_spacing"],
                                  interpolation_nodes=interpolation_nodes)
