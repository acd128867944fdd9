"""Dipoles and polarizabilities of a frame from atomic charges and isotropic atomic polarizabilities.

This is the numpy implementation used for evaluation; :mod:`polarff.response_tf` is its TensorFlow twin
for the training loss (same functional form, same :class:`FrameGeometry`). The torch MD runtime uses the
same physics.

Units: Å, e, Å³ (polarizability volume). Fields are in e/Å² (Gaussian-style, no Coulomb prefactor), so
an atom of polarizability α in a field E carries the dipole μ = α E in e·Å.

Physics
-------
* Exponential (AMOEBA-style) Thole damping with ``a = 0.39``: ``u = r / (α_i α_j)^(1/6)``,
  ``λ3 = 1 − exp(−a u³)``, ``λ5 = 1 − (1 + a u³) exp(−a u³)``. (λ3, λ5) are exactly the damping factors
  of the field of a smeared charge and of its gradient: ``T_ij = −∇ (λ3 r / r³)``. Every function takes
  ``a`` either as one number for all pairs or per atom, shape (N,); a pair then uses ``min(a_i, a_j)``,
  AMOEBA's (and OpenMM's ``AmoebaMultipoleForce``'s) combination rule, so an atom with a small ``a``
  damps all its pairs more strongly (:func:`pair_thole`).
* Permanent field on atom i from the charges of *other* molecules:
  ``E_i = Σ_j q_j λ3 r_ij / r³`` with ``r_ij = r_i − r_j``.
* Dipole–dipole tensor for every pair ``j ≠ i`` (intramolecular pairs included):
  ``T_ij = λ5 · 3 r rᵀ / r⁵ − λ3 I / r³``.
* Induced dipoles solve ``μ = α (E + E_ext + T μ)``, i.e. ``(A⁻¹ − T) μ = E + E_ext`` with
  ``A = diag(α_i I₃)``. The relay matrix ``B = (A⁻¹ − T)⁻¹`` (3N×3N) is symmetric.
* Periodic frames: minimum-image pair vectors; every pair term (field and tensor) is multiplied by the
  switch ``s(r)`` of :func:`switch`, 1 below ``switch_on`` (default 5.0 Å), the quintic
  ``1 − 10x³ + 15x⁴ − 6x⁵`` with ``x = (r − switch_on)/(cutoff − switch_on)`` in between, and 0 from
  ``cutoff`` (default 6.0 Å) on, with zero first and second derivative at both ends. The cutoff must be
  below half the narrowest cell width, so each pair has at most one image inside it.
  Non-periodic frames: all pairs, no switch, no cutoff.

Solver
------
Dense direct solve (intended for N ≲ a few hundred atoms per frame). The symmetric scaled system
``(I − S T S) y = S F`` with ``S = A^(1/2)`` and ``μ = S y`` is Cholesky-factorised once per call
(a failed factorisation means a polarization catastrophe and raises :class:`InputError`); this form is
well conditioned and exact for ``α_i = 0`` (pure point charges). :func:`induced_dipoles_iterative` is an
optional conjugate-gradient alternative on the same symmetric system.

Dipoles
-------
``μ_frame = Σ_i q_i x_i + Σ_i μ_ind,i``. Molecules are made whole by minimum image around their first
atom; ``x_i = r_first(m) + (r_i − r_first(m))`` where ``r_first(m)`` is the first atom's position *as
stored in the frame* (not re-wrapped). For neutral molecules the result does not depend on the origin
nor on the image of the molecule. For charged molecules and ions in a periodic frame the frame dipole is
defined only up to ``Q_m × lattice vector``; it follows the stored positions, so a continuous (unwrapped)
trajectory gives a continuous dipole. Its derivatives (e.g. ``dμ/dE``) are unaffected.

The molecular dipole of m is ``Σ_{i∈m} q_i (r_i − r_first(m)) + Σ_{i∈m} μ_ind,i`` (about the molecule's
first atom; origin-independent for neutral molecules, as the GPUMD water targets are).

Polarizabilities
----------------
``α_frame = Σ_ij B_ij`` = dμ_frame/dE_ext. The molecular polarizability uses the *row-sum* partition
``α_m = Σ_{i∈m} Σ_j B_ij`` = dμ_m/dE_ext (the response of molecule m's dipole to a uniform applied field,
intermolecular induction included). It is not symmetric in general (as the GPUMD per-molecule targets are
not); the molecular tensors sum to the symmetric ``α_frame``. Only the 3 columns ``B P`` (P = stacked
identities, the response to a uniform field) are ever solved for, never the full B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polarff.data import Frame, minimum_image_vectors, molecules
from polarff.errors import ConfigError, InputError

#: Thole damping parameter a of the exponential (AMOEBA) damping, dimensionless.
THOLE_A = 0.39
#: Default pair cutoff (Å) of periodic frames.
DEFAULT_CUTOFF = 6.0
#: Default start (Å) of the smooth switch of periodic frames.
DEFAULT_SWITCH_ON = 5.0
#: Polarizabilities (Å³) below this value are treated as this value inside the damping only, so that
#: α = 0 (a pure point charge) gives λ = 1 and finite gradients.
ALPHA_FLOOR = 1e-12


def switch(r: np.ndarray, switch_on: float, cutoff: float) -> np.ndarray:
    """Smooth switch: 1 for ``r ≤ switch_on``, 0 for ``r ≥ cutoff``, quintic (C²) in between.

    Parameters
    ----------
    r : ndarray
        Distances in Å.
    switch_on, cutoff : float
        Start and end of the switching interval in Å (``switch_on < cutoff``).

    Returns
    -------
    ndarray
        ``1 − 10x³ + 15x⁴ − 6x⁵`` with ``x = clip((r − switch_on)/(cutoff − switch_on), 0, 1)``.
    """
    x = np.clip((np.asarray(r, dtype=np.float64) - switch_on) / (cutoff - switch_on), 0.0, 1.0)
    return 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x**2)


def pair_thole(a: float | np.ndarray, n_atoms: int) -> float | np.ndarray:
    """Thole parameter of every pair from a global or per-atom ``a`` (dimensionless).

    Parameters
    ----------
    a : float or ndarray, shape (N,)
        One value for all pairs, or one per atom.
    n_atoms : int
        Number of atoms N.

    Returns
    -------
    float or ndarray, shape (N, N)
        ``a`` itself for a number; ``min(a_i, a_j)`` for per-atom values.

    Raises
    ------
    InputError
        For a non-positive or non-finite value, or per-atom values of the wrong length.
    """
    arr = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError("invalid Thole damping parameter", field="thole a", expected="finite values > 0",
                         found=f"min {arr.min():.4g}" if arr.size else "empty")
    if arr.ndim == 0:
        return float(arr)
    if arr.shape != (n_atoms,):
        raise InputError("per-atom Thole parameters of the wrong shape", field="thole a",
                         expected=f"a number or shape ({n_atoms},)", found=arr.shape)
    return np.minimum(arr[:, None], arr[None, :])


def thole_damping(r: np.ndarray, alpha_i: np.ndarray, alpha_j: np.ndarray, a: float | np.ndarray = THOLE_A
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Exponential Thole damping factors (λ3, λ5) of a pair.

    Parameters
    ----------
    r : ndarray
        Pair distances in Å.
    alpha_i, alpha_j : ndarray
        Isotropic polarizabilities of the two atoms in Å³ (broadcast against ``r``).
    a : float or ndarray
        Damping parameter of the pairs (dimensionless; broadcast against ``r``).

    Returns
    -------
    lambda3, lambda5 : ndarray
        ``1 − exp(−a u³)`` and ``1 − (1 + a u³) exp(−a u³)`` with ``u = r / (α_i α_j)^(1/6)``.
    """
    r = np.asarray(r, dtype=np.float64)
    return _damping_from_cubes(r**3, np.asarray(alpha_i) * np.asarray(alpha_j), a)


def _damping_from_cubes(r_cubed: np.ndarray, alpha_product: np.ndarray, a: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    au3 = a * r_cubed / np.sqrt(np.maximum(alpha_product, ALPHA_FLOOR**2))
    decay = np.exp(-au3)
    return 1.0 - decay, 1.0 - (1.0 + au3) * decay


@dataclass(frozen=True)
class FrameGeometry:
    """α- and q-independent geometry of one frame, precomputed once (numpy, float64).

    Consumed by :mod:`polarff.response` and :mod:`polarff.response_tf`. Pair arrays are dense (N, N):
    the diagonal and the pairs beyond the cutoff have zero weight. Build with :meth:`from_frame`.

    Attributes
    ----------
    n_atoms, n_molecules : int
        Number of atoms N and molecules M.
    periodic : bool
        Whether minimum image, cutoff and switch were applied.
    cutoff, switch_on : float or None
        Switch interval in Å (None for a non-periodic frame).
    molecule_index : ndarray of int, shape (N,)
        Molecule of each atom, numbered 0..M−1.
    label_atoms : ndarray of int, shape (M,)
        Atom on which a molecule's labels are stored (its first heavy atom, else its first atom),
        the convention of ``Frame.labels['molecular_dipoles']``.
    membership : ndarray, shape (M, N)
        1.0 where atom n belongs to molecule m.
    dipole_positions : ndarray, shape (N, 3)
        Positions x_i (Å) entering Σ q_i x_i: molecules whole, anchored at their first atom.
    relative_positions : ndarray, shape (N, 3)
        ``r_i − r_first(m)`` (Å), molecules whole.
    pair_vectors : ndarray, shape (N, N, 3)
        ``r_i − r_j`` (Å), minimum image for periodic frames.
    pair_distances : ndarray, shape (N, N)
        ``|r_i − r_j|`` (Å), zero on the diagonal.
    pair_weights : ndarray, shape (N, N)
        Switch value of each pair j ≠ i (1 for every pair of a non-periodic frame, 0 on the diagonal).
    r_cubed : ndarray, shape (N, N)
        ``r³`` (Å³) with 1 on the diagonal (which has zero weight), for the damping.
    field_kernel : ndarray, shape (N, N, 3)
        ``w_ij r_ij / r³`` for intermolecular pairs, 0 otherwise (Å⁻²).
    tensor_rr : ndarray, shape (N, N, 3, 3)
        ``w_ij · 3 r rᵀ / r⁵`` (Å⁻³).
    tensor_identity : ndarray, shape (N, N)
        ``w_ij / r³`` (Å⁻³).
    """

    n_atoms: int
    n_molecules: int
    periodic: bool
    cutoff: float | None
    switch_on: float | None
    molecule_index: np.ndarray
    label_atoms: np.ndarray
    membership: np.ndarray
    dipole_positions: np.ndarray
    relative_positions: np.ndarray
    pair_vectors: np.ndarray
    pair_distances: np.ndarray
    pair_weights: np.ndarray
    r_cubed: np.ndarray
    field_kernel: np.ndarray
    tensor_rr: np.ndarray
    tensor_identity: np.ndarray

    @classmethod
    def from_frame(cls, frame: Frame, cutoff: float = DEFAULT_CUTOFF,
                   switch_on: float = DEFAULT_SWITCH_ON, molecule_index: np.ndarray | None = None
                   ) -> "FrameGeometry":
        """Precompute the geometry of ``frame``.

        Parameters
        ----------
        frame : Frame
            The structure (positions in Å; cell and pbc used when periodic).
        cutoff, switch_on : float
            Switch interval in Å for periodic frames (ignored otherwise); ``cutoff`` must stay below
            half the narrowest cell width.
        molecule_index : ndarray of int, optional
            Molecule of each atom; by default ``frame.info['molecule_index']`` if present, else
            :func:`polarff.data.molecules`.

        Returns
        -------
        FrameGeometry

        Raises
        ------
        ConfigError
            If ``switch_on`` / ``cutoff`` are not ``0 ≤ switch_on < cutoff``.
        InputError
            If the cutoff reaches half the cell width, or two atoms coincide.
        """
        n = frame.n_atoms
        mol = _molecule_index(frame, molecule_index)
        periodic = frame.periodic
        if periodic:
            _check_cutoff(frame, cutoff, switch_on)
        idx = np.arange(n)
        vectors = -minimum_image_vectors(frame, idx[:, None], idx[None, :])  # r_i − r_j
        distances = np.linalg.norm(vectors, axis=-1)
        off_diagonal = ~np.eye(n, dtype=bool)
        if np.any(distances[off_diagonal] < 1e-6):
            i, j = np.argwhere(off_diagonal & (distances < 1e-6))[0]
            raise InputError("two atoms coincide", file=frame.info.get("source"),
                             frame=frame.info.get("index"), field="positions",
                             expected="distinct positions", found=f"atoms {i} and {j} at distance "
                             f"{distances[i, j]:.2e} Å")
        weights = off_diagonal.astype(np.float64)
        if periodic:
            weights *= switch(distances, switch_on, cutoff)
        safe_r = np.where(off_diagonal, distances, 1.0)
        r_cubed = safe_r**3
        intermolecular = mol[:, None] != mol[None, :]
        field_kernel = (weights * intermolecular / r_cubed)[..., None] * vectors
        tensor_rr = (3.0 * weights / safe_r**5)[..., None, None] * vectors[..., :, None] * vectors[..., None, :]
        relative, anchored = _molecule_positions(frame, mol)
        n_mol = int(mol.max()) + 1 if n else 0
        membership = (mol[None, :] == np.arange(n_mol)[:, None]).astype(np.float64)
        return cls(n_atoms=n, n_molecules=n_mol, periodic=periodic,
                   cutoff=float(cutoff) if periodic else None,
                   switch_on=float(switch_on) if periodic else None,
                   molecule_index=mol, label_atoms=_label_atoms(frame, mol), membership=membership,
                   dipole_positions=anchored, relative_positions=relative, pair_vectors=vectors,
                   pair_distances=distances, pair_weights=weights, r_cubed=r_cubed,
                   field_kernel=field_kernel, tensor_rr=tensor_rr, tensor_identity=weights / r_cubed)

    def molecular_to_atoms(self, values: np.ndarray) -> np.ndarray:
        """Place per-molecule values (M, ...) on their label atoms, zeros elsewhere: (N, ...).

        This is the layout of ``Frame.labels['molecular_dipoles']`` and ``'molecular_polarizabilities'``.
        """
        values = np.asarray(values)
        out = np.zeros((self.n_atoms,) + values.shape[1:], dtype=values.dtype)
        out[self.label_atoms] = values
        return out

    def label_mask(self) -> np.ndarray:
        """Boolean (N,) mask of the atoms that carry molecular labels."""
        mask = np.zeros(self.n_atoms, dtype=bool)
        mask[self.label_atoms] = True
        return mask


def _molecule_index(frame: Frame, molecule_index: np.ndarray | None) -> np.ndarray:
    if molecule_index is None:
        molecule_index = frame.info.get("molecule_index")
    if molecule_index is None:
        return molecules(frame)
    mol = np.asarray(molecule_index)
    if mol.shape != (frame.n_atoms,) or not np.issubdtype(mol.dtype, np.integer) or (
            mol.size and (mol.min() != 0 or set(np.unique(mol)) != set(range(int(mol.max()) + 1)))):
        raise InputError("invalid molecule index", file=frame.info.get("source"),
                         frame=frame.info.get("index"), field="molecule_index",
                         expected=f"integers 0..M-1 covering every molecule, shape ({frame.n_atoms},)",
                         found=f"shape {mol.shape}, dtype {mol.dtype}")
    return mol.astype(int)


def _check_cutoff(frame: Frame, cutoff: float, switch_on: float) -> None:
    if not (0.0 <= switch_on < cutoff):
        raise ConfigError(f"response switch: need 0 <= switch_on < cutoff, found switch_on={switch_on} Å, "
                          f"cutoff={cutoff} Å")
    cell = frame.cell
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    half = 0.5 * min(w for w, p in zip(widths, frame.pbc) if p)
    if cutoff >= half:
        raise InputError("response cutoff reaches half the cell width (minimum image would be ambiguous)",
                         file=frame.info.get("source"), frame=frame.info.get("index"), field="cutoff",
                         expected=f"< {half:.3f} Å", found=f"{cutoff} Å")


def _molecule_positions(frame: Frame, mol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative positions r_i − r_first(m) (molecules whole) and anchored positions (Å)."""
    relative = np.zeros_like(frame.positions)
    anchored = np.zeros_like(frame.positions)
    for m in np.unique(mol):
        idx = np.nonzero(mol == m)[0]
        first = np.full(len(idx), idx[0])
        relative[idx] = minimum_image_vectors(frame, first, idx)
        anchored[idx] = frame.positions[idx[0]] + relative[idx]
    return relative, anchored


def _label_atoms(frame: Frame, mol: np.ndarray) -> np.ndarray:
    out = []
    for m in range(int(mol.max()) + 1 if mol.size else 0):
        idx = np.nonzero(mol == m)[0]
        heavy = [i for i in idx if frame.symbols[i] != "H"]
        out.append(heavy[0] if heavy else idx[0])
    return np.asarray(out, dtype=int)


def _check_per_atom(values: np.ndarray, geometry: FrameGeometry, name: str, nonnegative: bool = False
                    ) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (geometry.n_atoms,):
        raise InputError("per-atom array has the wrong shape", field=name,
                         expected=(geometry.n_atoms,), found=arr.shape)
    if not np.all(np.isfinite(arr)):
        raise InputError("NaN or infinite values", field=name, expected="finite values",
                         found=f"{int(np.sum(~np.isfinite(arr)))} non-finite")
    if nonnegative and np.any(arr < 0):
        raise InputError("negative polarizability", field=name, expected=">= 0 Å^3",
                         found=f"min {arr.min():.4g} Å^3")
    return arr


def _external(external_field: np.ndarray | None) -> np.ndarray:
    if external_field is None:
        return np.zeros(3)
    e = np.asarray(external_field, dtype=np.float64)
    if e.shape != (3,) or not np.all(np.isfinite(e)):
        raise InputError("invalid applied field", field="external_field", expected="finite (3,) in e/Å^2",
                         found=e.shape)
    return e


def damping(geometry: FrameGeometry, alpha: np.ndarray, a: float | np.ndarray = THOLE_A
            ) -> tuple[np.ndarray, np.ndarray]:
    """(λ3, λ5) of every pair, shape (N, N) each (``a`` global or per atom, see :func:`pair_thole`)."""
    return _damping_from_cubes(geometry.r_cubed, alpha[:, None] * alpha[None, :], pair_thole(a, geometry.n_atoms))


def permanent_field(geometry: FrameGeometry, charges: np.ndarray, alpha: np.ndarray,
                    a: float | np.ndarray = THOLE_A) -> np.ndarray:
    """Damped field (e/Å²) on each atom from the charges of the other molecules, shape (N, 3)."""
    q = _check_per_atom(charges, geometry, "charges")
    alpha = _check_per_atom(alpha, geometry, "polarizabilities", nonnegative=True)
    lambda3, _ = damping(geometry, alpha, a)
    return np.einsum("ij,ijk,j->ik", lambda3, geometry.field_kernel, q)


def dipole_tensor(geometry: FrameGeometry, alpha: np.ndarray, a: float | np.ndarray = THOLE_A) -> np.ndarray:
    """Damped dipole–dipole interaction matrix T (Å⁻³), shape (3N, 3N), index ``3 i + component``."""
    alpha = _check_per_atom(alpha, geometry, "polarizabilities", nonnegative=True)
    lambda3, lambda5 = damping(geometry, alpha, a)
    blocks = lambda5[..., None, None] * geometry.tensor_rr \
        - (lambda3 * geometry.tensor_identity)[..., None, None] * np.eye(3)
    n = geometry.n_atoms
    return blocks.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)


def _uniform_field_columns(n_atoms: int) -> np.ndarray:
    """P: (3N, 3) stacked identities, the per-atom field of a unit uniform field along x, y, z."""
    return np.tile(np.eye(3), (n_atoms, 1))


def _scaled_factor(geometry: FrameGeometry, alpha: np.ndarray, a: float | np.ndarray):
    """Cholesky factor of I − S T S with S = diag(sqrt(α)) (3N), and the 3N vector of sqrt(α)."""
    import scipy.linalg

    sqrt_alpha = np.repeat(np.sqrt(alpha), 3)
    matrix = np.eye(3 * geometry.n_atoms) - sqrt_alpha[:, None] * dipole_tensor(geometry, alpha, a) \
        * sqrt_alpha[None, :]
    try:
        factor = scipy.linalg.cho_factor(matrix, lower=True)
    except np.linalg.LinAlgError:
        lowest = float(np.linalg.eigvalsh(matrix)[0])
        raise InputError("polarization catastrophe: I − α^½ T α^½ is not positive definite "
                         "(atoms too close for their polarizabilities)", field="polarizabilities",
                         expected="lowest eigenvalue > 0", found=f"{lowest:.4g}") from None
    return factor, sqrt_alpha


def _relay(geometry: FrameGeometry, alpha: np.ndarray, fields: np.ndarray, a: float | np.ndarray) -> np.ndarray:
    """B F = (A⁻¹ − T)⁻¹ F for a (3N, k) block of fields F."""
    import scipy.linalg

    if geometry.n_atoms == 0:
        return np.zeros_like(fields)
    factor, sqrt_alpha = _scaled_factor(geometry, alpha, a)
    return sqrt_alpha[:, None] * scipy.linalg.cho_solve(factor, sqrt_alpha[:, None] * fields)


@dataclass(frozen=True)
class Response:
    """Everything :func:`response` computes for one frame.

    Attributes
    ----------
    induced_dipoles : ndarray, shape (N, 3)
        Induced atomic dipoles in e·Å.
    dipole : ndarray, shape (3,)
        Frame dipole Σ q x + Σ μ_ind in e·Å.
    molecular_dipoles : ndarray, shape (M, 3)
        Molecular dipoles in e·Å (about each molecule's first atom).
    atomic_polarizabilities : ndarray, shape (N, 3, 3)
        ``Σ_j B_ij`` = dμ_ind,i/dE_ext in Å³ (row [a, b] = dμ_a/dE_b).
    polarizability : ndarray, shape (3, 3)
        Frame polarizability in Å³.
    molecular_polarizabilities : ndarray, shape (M, 3, 3)
        Row-sum molecular polarizabilities in Å³.
    """

    induced_dipoles: np.ndarray
    dipole: np.ndarray
    molecular_dipoles: np.ndarray
    atomic_polarizabilities: np.ndarray
    polarizability: np.ndarray
    molecular_polarizabilities: np.ndarray


def response(geometry: FrameGeometry, charges: np.ndarray, alpha: np.ndarray,
             external_field: np.ndarray | None = None, a: float | np.ndarray = THOLE_A) -> Response:
    """Induced dipoles, dipoles and polarizabilities of a frame with one factorisation.

    Parameters
    ----------
    geometry : FrameGeometry
        Precomputed geometry of the frame.
    charges : ndarray, shape (N,)
        Atomic charges in e.
    alpha : ndarray, shape (N,)
        Isotropic atomic polarizabilities in Å³ (≥ 0; 0 = non-polarizable point charge).
    external_field : ndarray, shape (3,), optional
        Uniform applied field in e/Å² (zero by default).
    a : float or ndarray, shape (N,)
        Thole damping parameter, global or per atom (pairs use ``min(a_i, a_j)``).

    Returns
    -------
    Response
    """
    q = _check_per_atom(charges, geometry, "charges")
    alpha = _check_per_atom(alpha, geometry, "polarizabilities", nonnegative=True)
    e_ext = _external(external_field)
    n = geometry.n_atoms
    field = (permanent_field(geometry, q, alpha, a) + e_ext).reshape(3 * n, 1)
    solved = _relay(geometry, alpha, np.concatenate([field, _uniform_field_columns(n)], axis=1), a)
    induced = solved[:, 0].reshape(n, 3)
    atomic_pol = solved[:, 1:].reshape(n, 3, 3)
    return Response(induced_dipoles=induced,
                    dipole=q @ geometry.dipole_positions + induced.sum(axis=0),
                    molecular_dipoles=geometry.membership @ (q[:, None] * geometry.relative_positions + induced),
                    atomic_polarizabilities=atomic_pol,
                    polarizability=atomic_pol.sum(axis=0),
                    molecular_polarizabilities=np.einsum("mn,nab->mab", geometry.membership, atomic_pol))


def induced_dipoles(geometry: FrameGeometry, charges: np.ndarray, alpha: np.ndarray,
                    external_field: np.ndarray | None = None, a: float | np.ndarray = THOLE_A) -> np.ndarray:
    """Induced atomic dipoles (e·Å), shape (N, 3), by a dense direct solve."""
    q = _check_per_atom(charges, geometry, "charges")
    alpha = _check_per_atom(alpha, geometry, "polarizabilities", nonnegative=True)
    field = permanent_field(geometry, q, alpha, a) + _external(external_field)
    return _relay(geometry, alpha, field.reshape(-1, 1), a).reshape(geometry.n_atoms, 3)


def frame_dipole(geometry: FrameGeometry, charges: np.ndarray, alpha: np.ndarray,
                 external_field: np.ndarray | None = None, a: float | np.ndarray = THOLE_A) -> np.ndarray:
    """Frame dipole Σ q_i x_i + Σ μ_ind,i in e·Å, shape (3,)."""
    q = _check_per_atom(charges, geometry, "charges")
    return q @ geometry.dipole_positions + induced_dipoles(geometry, q, alpha, external_field, a).sum(axis=0)


def molecular_dipoles(geometry: FrameGeometry, charges: np.ndarray, alpha: np.ndarray,
                      external_field: np.ndarray | None = None, a: float | np.ndarray = THOLE_A) -> np.ndarray:
    """Molecular dipoles (e·Å) about each molecule's first atom, shape (M, 3)."""
    q = _check_per_atom(charges, geometry, "charges")
    induced = induced_dipoles(geometry, q, alpha, external_field, a)
    return geometry.membership @ (q[:, None] * geometry.relative_positions + induced)


def atomic_polarizabilities(geometry: FrameGeometry, alpha: np.ndarray, a: float | np.ndarray = THOLE_A
                            ) -> np.ndarray:
    """Effective atomic polarizability tensors Σ_j B_ij (Å³), shape (N, 3, 3)."""
    alpha = _check_per_atom(alpha, geometry, "polarizabilities", nonnegative=True)
    n = geometry.n_atoms
    return _relay(geometry, alpha, _uniform_field_columns(n), a).reshape(n, 3, 3)


def frame_polarizability(geometry: FrameGeometry, alpha: np.ndarray, a: float | np.ndarray = THOLE_A
                         ) -> np.ndarray:
    """Frame polarizability Σ_ij B_ij (Å³), shape (3, 3), symmetric."""
    return atomic_polarizabilities(geometry, alpha, a).sum(axis=0)


def molecular_polarizabilities(geometry: FrameGeometry, alpha: np.ndarray, a: float | np.ndarray = THOLE_A
                               ) -> np.ndarray:
    """Row-sum molecular polarizabilities Σ_{i∈m} Σ_j B_ij (Å³), shape (M, 3, 3)."""
    return np.einsum("mn,nab->mab", geometry.membership, atomic_polarizabilities(geometry, alpha, a))


def induced_dipoles_iterative(geometry: FrameGeometry, charges: np.ndarray, alpha: np.ndarray,
                              external_field: np.ndarray | None = None, a: float | np.ndarray = THOLE_A,
                              tol: float = 1e-10, max_iter: int = 1000) -> np.ndarray:
    """Induced dipoles (e·Å) by conjugate gradients on ``(I − S T S) y = S E``, ``μ = S y``.

    Same result as :func:`induced_dipoles` (to ``tol``); matrix-free apart from T itself.

    Parameters
    ----------
    tol : float
        Relative residual at which to stop.
    max_iter : int
        Iteration limit.

    Raises
    ------
    InputError
        If CG does not converge (e.g. a polarization catastrophe).
    """
    q = _check_per_atom(charges, geometry, "charges")
    alpha = _check_per_atom(alpha, geometry, "polarizabilities", nonnegative=True)
    sqrt_alpha = np.repeat(np.sqrt(alpha), 3)
    tensor = dipole_tensor(geometry, alpha, a)
    rhs = sqrt_alpha * (permanent_field(geometry, q, alpha, a) + _external(external_field)).ravel()

    def apply(y: np.ndarray) -> np.ndarray:
        return y - sqrt_alpha * (tensor @ (sqrt_alpha * y))

    y = np.zeros_like(rhs)
    residual = rhs.copy()
    direction = residual.copy()
    norm_rhs = np.linalg.norm(rhs)
    rr = residual @ residual
    for _ in range(max_iter):
        if np.sqrt(rr) <= tol * max(norm_rhs, 1e-300):
            return (sqrt_alpha * y).reshape(geometry.n_atoms, 3)
        image = apply(direction)
        curvature = direction @ image
        if curvature <= 0:
            break
        step = rr / curvature
        y += step * direction
        residual -= step * image
        rr_new = residual @ residual
        direction = residual + (rr_new / rr) * direction
        rr = rr_new
    raise InputError("induced dipoles did not converge (polarization catastrophe?)", field="polarizabilities",
                     expected=f"relative residual <= {tol}",
                     found=f"{np.sqrt(rr) / max(norm_rhs, 1e-300):.3g}")
