"""Cluster labels: polarizability tensors and Born effective charges from finite electric fields.

Periodic boxes give no usable molecular response (a GFN2-xTB dipole under periodic boundary conditions is
meaningless), so response labels are computed on *clusters*: spheres of whole molecules cut from periodic
frames around a centre atom (usually an ion), treated as isolated molecules.

* :func:`cut_cluster` / :func:`ion_centred_clusters`: whole molecules, ion-centred, net charge from the
  formal ion charges.
* :func:`gfn2_response`: GFN2-xTB (tblite) under a uniform field ±h along x, y, z (central differences):
  the polarizability tensor α_ab = ∂μ_a/∂E_b and the Born effective charges Z*_i,ab = ∂F_i,b/∂E_a. Fast
  (~ms for a water molecule) but GFN2-xTB's minimal valence basis misses most of the response: the water
  monomer comes out at ~0.36 Å³ against the experimental 1.45 Å³ (about a quarter; the out-of-plane
  component is ~0 because a minimal basis has no virtual orbital of that symmetry). Born charges are
  physically meaningful (they are force responses, dominated by charge flow).
* :func:`dft_response`: pyscf Kohn–Sham (default B3LYP/def2-SVPD; the diffuse functions matter for α)
  under the same finite fields. B3LYP/def2-SVPD gives 1.42 Å³ for the water monomer.
* :func:`calibrate` and :func:`fit_species_scales`: a calibration set of small clusters (water monomer,
  dimer, Na⁺(H₂O)ₙ, Cl⁻(H₂O)ₙ, n ≤ 3) labelled with DFT, GFN2-xTB and D4; per-species factors that map
  D4 atomic (or GFN2 cluster) polarizabilities onto DFT, stored by :func:`apply_species_scales` in the data
  set's per-frame metadata and in a JSON file.

Sum rule: the net force on a cluster of charge Q in a uniform field is Q·E, so Σ_i Z*_i = Q·1 (the acoustic
sum rule Σ_i Z*_i = 0 for neutral clusters). :func:`born_sum_rule_error` measures the deviation.

Units: Å, e, Å³ (α), e·Å (dipoles), e (Born charges); fields are given in atomic units
(1 a.u. = 5.142e11 V/m = 51.42 V/Å).
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from polarff.data import Frame, minimum_image_vectors, molecules
from polarff.fileio import write_json
from polarff.errors import ConfigError, InputError
from polarff.label import BOHR3_TO_A3, BOHR_A, LabelError

#: Formal charges of monatomic ions (e); molecules are neutral.
FORMAL_CHARGES = {"Li": 1, "Na": 1, "K": 1, "F": -1, "Cl": -1, "Br": -1, "I": -1}
#: Experimental static electronic polarizability of a gas-phase water molecule (Å³); e.g. W. F. Murphy,
#: J. Chem. Phys. 67, 5877 (1977).
WATER_ALPHA_EXPERIMENT_A3 = 1.45
#: Experimental gas-phase water geometry (r_OH Å, HOH angle degrees).
WATER_GEOMETRY = (0.9572, 104.52)
#: Default finite-field steps (atomic units) of GFN2-xTB and DFT.
GFN2_FIELD_AU = 5e-4
DFT_FIELD_AU = 2e-3
#: Largest residual (a.u.) of the CPKS equations accepted by :func:`dft_response_cpks`.
CPKS_MAX_RESIDUAL_AU = 1e-5


# ------------------------------------------------------------------------------------------ cutting
def _molecule_anchor(symbols: Sequence[str], members: np.ndarray) -> int:
    """First non-hydrogen atom of a molecule (its anchor), or its first atom."""
    for i in members:
        if symbols[i] != "H":
            return int(i)
    return int(members[0])


def cut_cluster(frame: Frame, centre: int, radius: float | None = None, *, n_molecules: int | None = None,
                neighbours: str = "all", molecule_index: np.ndarray | None = None) -> Frame:
    """A non-periodic cluster of whole molecules around atom ``centre`` of ``frame``.

    A molecule belongs to the cluster when its anchor (first heavy atom: O of a water, the ion itself)
    lies within ``radius`` of the centre atom (minimum image), and/or when it is among the
    ``n_molecules`` molecules nearest to the centre. Each molecule is made whole and placed at its
    minimum-image position; the centre atom sits at the origin.

    Parameters
    ----------
    frame : Frame
        Periodic or non-periodic frame (Å).
    centre : int
        Index of the centre atom (e.g. a Na or Cl ion).
    radius : float, optional
        Sphere radius (Å); must be below half the smallest cell width for a periodic frame.
    n_molecules : int, optional
        Keep at most this many molecules besides the centre's own (the nearest ones).
    neighbours : {'all', 'neutral'}
        Which molecules may join: all, or neutral ones only (e.g. waters around an ion, no counter-ion).
    molecule_index : ndarray of int, optional
        Precomputed :func:`polarff.data.molecules` of ``frame``.

    Returns
    -------
    Frame
        Non-periodic frame; ``total_charge`` = sum of formal ion charges (:data:`FORMAL_CHARGES`);
        ``info``: ``cluster_centre`` (index in the parent), ``parent_atoms`` (indices in the parent,
        space-separated), ``cluster_radius``, ``source``/``index`` of the parent.

    Raises
    ------
    InputError
        If ``centre`` is out of range or the radius exceeds half the cell.
    ConfigError
        If neither ``radius`` nor ``n_molecules`` is given, or ``neighbours`` is unknown.
    """
    if radius is None and n_molecules is None:
        raise ConfigError("cut_cluster: give a radius (Å) and/or n_molecules")
    if neighbours not in ("all", "neutral"):
        raise ConfigError(f"cut_cluster: neighbours must be 'all' or 'neutral', found {neighbours!r}")
    n = frame.n_atoms
    src, idx = frame.info.get("source"), frame.info.get("index")
    if not 0 <= int(centre) < n:
        raise InputError("cluster centre atom out of range", file=src, frame=idx, field="centre",
                         expected=f"0..{n - 1}", found=centre)
    if radius is not None:
        _check_radius(frame, float(radius))
    mol = molecules(frame) if molecule_index is None else np.asarray(molecule_index)
    vectors = minimum_image_vectors(frame, np.full(n, int(centre)), np.arange(n))
    centre_mol = int(mol[centre])
    candidates = []
    for m in np.unique(mol):
        members = np.nonzero(mol == m)[0]
        if m != centre_mol and neighbours == "neutral" and _formal_charge(frame.symbols, members) != 0:
            continue
        anchor = _molecule_anchor(frame.symbols, members)
        distance = 0.0 if m == centre_mol else float(np.linalg.norm(vectors[anchor]))
        if m == centre_mol or radius is None or distance <= radius:
            candidates.append((distance, int(m), members, anchor))
    candidates.sort(key=lambda c: (c[1] != centre_mol, c[0]))
    if n_molecules is not None:
        candidates = candidates[:1 + int(n_molecules)]
    symbols, positions, parent = [], [], []
    for _, _, members, anchor in candidates:
        whole = vectors[anchor] + minimum_image_vectors(frame, np.full(len(members), anchor), members)
        symbols += [frame.symbols[i] for i in members]
        positions.append(whole)
        parent += [int(i) for i in members]
    info = {"cluster_centre": int(centre), "parent_atoms": " ".join(map(str, parent)),
            "cluster_radius": float(radius) if radius is not None else -1.0,
            "parent_source": str(src), "parent_index": -1 if idx is None else int(idx)}
    return Frame(symbols, np.concatenate(positions), total_charge=float(_formal_charge(symbols)),
                 info=info).validate()


def ion_centred_clusters(frame: Frame, radius: float, species: Sequence[str] = ("Na", "Cl"),
                         max_per_species: int | None = None) -> list[Frame]:
    """Clusters of whole molecules within ``radius`` Å of each ion of the given species.

    Parameters
    ----------
    frame : Frame
        Periodic frame (Å).
    radius : float
        Sphere radius (Å).
    species : sequence of str
        Centre species (ions).
    max_per_species : int, optional
        At most this many clusters per species (the first ions in the frame).

    Returns
    -------
    list of Frame
        One cluster per chosen ion (see :func:`cut_cluster`).
    """
    mol = molecules(frame)
    clusters = []
    for sp in species:
        centres = [i for i, s in enumerate(frame.symbols) if s == sp]
        if max_per_species is not None:
            centres = centres[:max_per_species]
        clusters += [cut_cluster(frame, i, radius, molecule_index=mol) for i in centres]
    return clusters


def _formal_charge(symbols: Sequence[str], members: Iterable[int] | None = None) -> int:
    chosen = symbols if members is None else [symbols[i] for i in members]
    return int(sum(FORMAL_CHARGES.get(s, 0) for s in chosen))


def _check_radius(frame: Frame, radius: float) -> None:
    if not (np.isfinite(radius) and radius > 0):
        raise ConfigError(f"cluster radius must be a positive length in Å (found {radius})")
    if frame.periodic:
        volume = abs(np.linalg.det(frame.cell))
        widths = [volume / np.linalg.norm(np.cross(frame.cell[(k + 1) % 3], frame.cell[(k + 2) % 3]))
                  for k in range(3)]
        if radius > 0.5 * min(widths):
            raise InputError("cluster radius exceeds half the cell width (a periodic image would be cut "
                             "twice)", file=frame.info.get("source"), frame=frame.info.get("index"),
                             field="radius", expected=f"<= {0.5 * min(widths):.3f} Å", found=radius)


# ----------------------------------------------------------------------------------- response
@dataclass
class ClusterResponse:
    """Finite-field response of a non-periodic cluster.

    Attributes
    ----------
    polarizability : ndarray (3, 3)
        α_ab = ∂μ_a/∂E_b in Å³ (symmetric up to finite-difference noise).
    born_charges : ndarray (N, 3, 3) or None
        Z*_i,ab = ∂F_i,b/∂E_a in e (None when not computed).
    dipole : ndarray (3,)
        Zero-field dipole (e·Å); origin-dependent for charged clusters (origin: the coordinate origin,
        where :func:`cut_cluster` puts the centre atom).
    charges : ndarray (N,) or None
        Zero-field atomic charges (e), where the method gives them.
    method : str
        Method and settings.
    field_au : float
        Finite-field step (a.u.).
    seconds : float
        Wall time of all field calculations.
    n_basis : int
        Number of basis functions (DFT) or 0.
    """

    polarizability: np.ndarray
    born_charges: np.ndarray | None
    dipole: np.ndarray
    charges: np.ndarray | None
    method: str
    field_au: float
    seconds: float
    n_basis: int = 0

    @property
    def isotropic(self) -> float:
        """Isotropic polarizability tr(α)/3 in Å³."""
        return float(np.trace(self.polarizability) / 3.0)


def _require_cluster(frame: Frame, what: str) -> None:
    frame.validate()
    if frame.periodic:
        raise InputError(f"{what} needs a non-periodic cluster (cut one with polarff.clusters.cut_cluster)",
                         file=frame.info.get("source"), frame=frame.info.get("index"), field="pbc",
                         expected="pbc False", found=frame.pbc.tolist())


def _field_vectors(h: float) -> list[np.ndarray]:
    """Zero field, then +h and −h along x, y, z."""
    out = [np.zeros(3)]
    for b in range(3):
        e = np.zeros(3)
        e[b] = h
        out += [e, -e]
    return out


def gfn2_response(frame: Frame, *, field_au: float = GFN2_FIELD_AU, accuracy: float = 0.01,
                  max_iter: int = 250) -> ClusterResponse:
    """GFN2-xTB polarizability tensor and Born effective charges of a cluster (tblite, finite fields).

    Seven self-consistent GFN2-xTB calculations: no field, and ±``field_au`` along x, y and z
    (tblite ``electric-field`` interaction). Central differences give α = ∂μ/∂E (dipole) and
    Z*_i,ab = ∂F_i,b/∂E_a (forces F = −gradient).

    Parameters
    ----------
    frame : Frame
        Non-periodic cluster (Å); ``total_charge`` sets the electron count.
    field_au : float
        Field step (a.u.; 5e-4 a.u. = 0.026 V/Å). The response is linear to < 0.1 % up to 2e-3 a.u.
    accuracy : float
        tblite SCC accuracy (tight: finite differences need a converged SCF).
    max_iter : int
        Maximum SCC iterations.

    Returns
    -------
    ClusterResponse
        α in Å³, Born charges in e, zero-field dipole (e·Å) and charges (e).

    Raises
    ------
    InputError
        For a periodic frame.
    LabelError
        If tblite fails (the message names the frame).
    """
    from tblite.interface import Calculator
    from tblite.library import ffi

    from polarff.label import _structure_arrays

    _require_cluster(frame, "a GFN2-xTB finite-field calculation")
    if not field_au > 0:
        raise ConfigError(f"field_au must be > 0 (found {field_au})")
    kwargs = _structure_arrays(frame)
    dipoles, gradients, charges = [], [], None
    start = time.perf_counter()
    try:
        for efield in _field_vectors(field_au):
            calc = Calculator("GFN2-xTB", **kwargs)
            calc.set("verbosity", 0)
            calc.set("accuracy", accuracy)
            calc.set("max-iter", max_iter)
            if np.any(efield):
                calc.add("electric-field", ffi.new("double[3]", [float(x) for x in efield]))
            result = calc.singlepoint()
            dipoles.append(np.array(result.get("dipole"), dtype=np.float64))
            gradients.append(np.array(result.get("gradient"), dtype=np.float64))
            if charges is None:
                charges = np.array(result.get("charges"), dtype=np.float64)
    except Exception as exc:  # tblite raises TBLiteRuntimeError / TBLiteValueError
        raise LabelError(f"{frame.where()}: GFN2-xTB finite-field calculation failed: "
                         f"{type(exc).__name__}: {exc}") from None
    alpha_au, born = _central_differences(dipoles, gradients, field_au)
    return ClusterResponse(alpha_au * BOHR3_TO_A3, born, dipoles[0] * BOHR_A, charges,
                           f"GFN2-xTB/tblite finite field ±{field_au:g} a.u.", field_au,
                           time.perf_counter() - start)


def _central_differences(dipoles: list[np.ndarray], gradients: list[np.ndarray] | None, h: float
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """α (a.u.) and Born charges (e) from results at fields [0, +x, −x, +y, −y, +z, −z]."""
    alpha = np.zeros((3, 3))
    born = None if gradients is None else np.zeros((len(gradients[0]), 3, 3))
    for b in range(3):
        plus, minus = 1 + 2 * b, 2 + 2 * b
        alpha[:, b] = (dipoles[plus] - dipoles[minus]) / (2 * h)
        if born is not None:
            # Z*_i,ab = dF_i,b / dE_a with F = -gradient; here the field is along b.
            born[:, b, :] = -(gradients[plus] - gradients[minus]) / (2 * h)
    return alpha, born


def dft_response(frame: Frame, *, xc: str = "b3lyp", basis: str = "def2-svpd",
                 field_au: float = DFT_FIELD_AU, threads: int = 1, conv_tol: float = 1e-10,
                 grid_level: int = 3) -> ClusterResponse:
    """Kohn–Sham DFT polarizability tensor of a closed-shell cluster (pyscf, finite fields).

    The field enters the core Hamiltonian as h + E·r (electron charge −1; dipole integrals about the
    centre of nuclear charge); each field's SCF starts from the previous density. α = ∂μ/∂E by central
    differences of the SCF dipole. Born charges are not computed (pyscf's analytic gradient ignores a
    modified core Hamiltonian).

    Parameters
    ----------
    frame : Frame
        Non-periodic, closed-shell cluster (Å).
    xc, basis : str
        Functional and basis set (diffuse functions are needed for α: def2-SVPD, aug-cc-pVDZ).
    field_au : float
        Field step (a.u.).
    threads : int
        pyscf (OpenMP) threads.
    conv_tol : float
        SCF energy convergence (Hartree).
    grid_level : int
        DFT integration grid level.

    Returns
    -------
    ClusterResponse
        α in Å³, zero-field dipole (e·Å), ``n_basis``, wall time.

    Raises
    ------
    InputError
        For a periodic frame or an odd number of electrons.
    LabelError
        If an SCF does not converge.
    """
    from pyscf import dft, lib

    _require_cluster(frame, "a DFT finite-field calculation")
    lib.num_threads(int(threads))
    start = time.perf_counter()
    mol = pyscf_molecule(frame, basis)
    nuclear = mol.atom_charges()
    origin = nuclear @ mol.atom_coords() / nuclear.sum()
    with mol.with_common_orig(origin):
        r_ints = mol.intor_symmetric("int1e_r", comp=3)
    h_core = mol.intor_symmetric("int1e_kin") + mol.intor_symmetric("int1e_nuc")
    if mol.has_ecp():
        h_core = h_core + mol.intor_symmetric("ECPscalar")
    dipoles, density = [], None
    for efield in _field_vectors(field_au):
        mf = dft.RKS(mol)
        mf.xc, mf.conv_tol, mf.max_cycle = xc, conv_tol, 100
        mf.grids.level = grid_level
        h_field = h_core + np.einsum("x,xij->ij", efield, r_ints)
        mf.get_hcore = lambda *args, h=h_field: h
        mf.kernel(dm0=density)
        if not mf.converged:
            raise LabelError(f"{frame.where()}: {xc}/{basis} SCF did not converge at field {efield.tolist()} a.u.")
        density = mf.make_rdm1()
        with mol.with_common_orig(origin):
            dipoles.append(np.asarray(mf.dip_moment(mol, density, unit="AU", verbose=0), dtype=np.float64))
    alpha_au, _ = _central_differences(dipoles, None, field_au)
    return ClusterResponse(alpha_au * BOHR3_TO_A3, None, dipoles[0] * BOHR_A, None,
                           f"{xc.upper()}/{basis} (pyscf) finite field ±{field_au:g} a.u.", field_au,
                           time.perf_counter() - start, int(mol.nao))


def dft_response_cpks(frame: Frame, *, xc: str = "b3lyp", basis: str = "def2-svpd", threads: int = 1,
                      conv_tol: float = 1e-10, cphf_tol: float = 1e-8, grid_level: int = 3,
                      density_fit: bool = True) -> ClusterResponse:
    """Kohn–Sham DFT polarizability tensor of a closed-shell cluster by coupled-perturbed Kohn–Sham (pyscf).

    One SCF and one linear-response solve for the three field directions, in place of the seven SCFs of
    :func:`dft_response` (the same α to finite-difference accuracy, a few times faster); with
    ``density_fit`` the Coulomb and exchange integrals use pyscf's default auxiliary basis.

    α_ab = ∂μ_a/∂E_b = −4 Σ_ai h^a_ai U^b_ai, with h^a the virtual–occupied dipole integrals (about the centre
    of nuclear charge; α of a charged cluster does not depend on it) and U^b the orbital response to a unit
    field along b, symmetrised.

    Parameters
    ----------
    frame : Frame
        Non-periodic, closed-shell cluster (Å).
    xc, basis : str
        Functional and basis set (diffuse functions are needed for α: def2-SVPD, aug-cc-pVDZ).
    threads : int
        pyscf (OpenMP) threads.
    conv_tol, cphf_tol : float
        SCF energy convergence (Hartree) and CPKS residual tolerance.
    grid_level : int
        DFT integration grid level.
    density_fit : bool
        Density fitting of the two-electron integrals.

    Returns
    -------
    ClusterResponse
        α in Å³, zero-field dipole about the coordinate origin (e·Å), ``n_basis``, wall time.

    Raises
    ------
    InputError
        For a periodic frame or an odd number of electrons.
    LabelError
        If the SCF or the CPKS equations do not converge.
    """
    from pyscf import dft, lib
    from pyscf.scf import cphf

    _require_cluster(frame, "a DFT linear-response calculation")
    lib.num_threads(int(threads))
    start = time.perf_counter()
    mol = pyscf_molecule(frame, basis)
    mf = dft.RKS(mol)
    mf.xc, mf.conv_tol, mf.max_cycle = xc, conv_tol, 100
    mf.grids.level = grid_level
    if density_fit:
        mf = mf.density_fit()
    mf.kernel()
    if not mf.converged:
        raise LabelError(f"{frame.where()}: {xc}/{basis} SCF did not converge")
    coeff, occ, energy = mf.mo_coeff, mf.mo_occ, mf.mo_energy
    occupied, virtual = coeff[:, occ > 0], coeff[:, occ == 0]
    nuclear = mol.atom_charges()
    with mol.with_common_orig(nuclear @ mol.atom_coords() / nuclear.sum()):
        r_ints = mol.intor_symmetric("int1e_r", comp=3)
    h1 = lib.einsum("xpq,pa,qi->xai", r_ints, virtual, occupied)  # (3, n_virtual, n_occupied)
    response = mf.gen_response(hermi=1)

    def induced_potential(u: np.ndarray) -> np.ndarray:
        """Virtual–occupied block of the Coulomb–exchange–correlation response to the orbital rotations u."""
        u = u.reshape((-1,) + h1.shape[1:])
        density = np.array([virtual @ (2.0 * x) @ occupied.T for x in u])
        v1 = response(density + density.transpose(0, 2, 1))
        return lib.einsum("xpq,pa,qi->xai", v1, virtual, occupied)

    # (ε_a − ε_i) U_ai + induced_potential(U)_ai = −h_ai for a unit field along each axis
    u, _ = cphf.solve(induced_potential, energy, occ, h1, None, max_cycle=100, tol=cphf_tol)
    gaps = energy[occ == 0][:, None] - energy[occ > 0][None, :]
    residual = np.max(np.abs(gaps * u + induced_potential(u) + h1)) if np.all(np.isfinite(u)) else np.inf
    if residual > CPKS_MAX_RESIDUAL_AU:
        raise LabelError(f"{frame.where()}: {xc}/{basis} CPKS equations did not converge (largest residual "
                         f"{residual:.2e} a.u., expected below {CPKS_MAX_RESIDUAL_AU:g})")
    alpha_au = -4.0 * np.einsum("xai,yai->xy", h1, u)
    alpha_au = 0.5 * (alpha_au + alpha_au.T)
    dipole = np.asarray(mf.dip_moment(mol, mf.make_rdm1(), unit="AU", verbose=0), dtype=np.float64)
    return ClusterResponse(alpha_au * BOHR3_TO_A3, None, dipole * BOHR_A, None,
                           f"{xc.upper()}/{basis} (pyscf) CPKS{', density fitting' if density_fit else ''}", 0.0,
                           time.perf_counter() - start, int(mol.nao))


def pyscf_molecule(frame: Frame, basis: str):
    """A closed-shell pyscf ``Mole`` of a cluster (Å), charge = the frame's total charge.

    Raises
    ------
    InputError
        For a periodic frame or an odd number of electrons.
    """
    from pyscf import gto

    _require_cluster(frame, "a pyscf calculation")
    try:
        return gto.M(atom=[[s, tuple(p)] for s, p in zip(frame.symbols, frame.positions)], unit="Angstrom",
                     basis=basis, charge=int(round(frame.total_charge)), spin=0, verbose=0)
    except Exception as exc:  # pyscf raises RuntimeError for an impossible spin/charge
        raise InputError(f"cannot build a closed-shell molecule: {exc}", file=frame.info.get("source"),
                         frame=frame.info.get("index"), field="total_charge",
                         expected="an even number of electrons", found=frame.total_charge) from None


def born_sum_rule_error(born_charges: np.ndarray, total_charge: float = 0.0) -> float:
    """max_ab |Σ_i Z*_i,ab − Q δ_ab| (e): deviation from the acoustic sum rule of a cluster of charge Q."""
    total = np.asarray(born_charges).sum(axis=0)
    return float(np.max(np.abs(total - float(total_charge) * np.eye(3))))


def water_monomer(r_oh: float = WATER_GEOMETRY[0], angle_deg: float = WATER_GEOMETRY[1]) -> Frame:
    """Isolated water molecule (O at the origin, molecule in the xy plane, C2 axis along y), Å."""
    half = np.radians(angle_deg) / 2
    pos = np.array([[0.0, 0.0, 0.0], [r_oh * np.sin(half), r_oh * np.cos(half), 0.0],
                    [-r_oh * np.sin(half), r_oh * np.cos(half), 0.0]])
    return Frame(["O", "H", "H"], pos, info={"cluster_name": "H2O"}).validate()


# -------------------------------------------------------------------------------------- labelling
def label_cluster(frame: Frame, *, field_au: float = GFN2_FIELD_AU) -> Frame:
    """A copy of a cluster with GFN2-xTB labels: ``charges``, ``polarizability`` (3×3 Å³) and, when
    neutral, ``dipole``; Born charges (N, 3, 3, e) in ``info['born_charges']``.

    The polarizability is GFN2-xTB's (about a quarter of the real value for water): scale it with a
    calibration (:func:`fit_species_scales`) before use as a quantitative target.
    """
    response = gfn2_response(frame, field_au=field_au)
    out = copy.deepcopy(frame)
    residual = float(response.charges.sum() - frame.total_charge)
    out.labels["charges"] = response.charges - residual / frame.n_atoms
    out.labels["polarizability"] = 0.5 * (response.polarizability + response.polarizability.T)
    if abs(frame.total_charge) < 1e-9:
        out.labels["dipole"] = response.dipole
    out.info["born_charges"] = response.born_charges
    out.info["born_sum_rule_error"] = born_sum_rule_error(response.born_charges, frame.total_charge)
    out.info["label_method"] = response.method
    return out.validate()


def write_clusters(path: str | os.PathLike, clusters: Sequence[Frame]) -> None:
    """Write labelled clusters to extxyz (atomically); Born charges as the per-atom column
    ``born_charges`` (9 values, row-major Z*_i,ab)."""
    from polarff.io import write_frames

    plain, extra = [], []
    for c in clusters:
        f = copy.deepcopy(c)
        born = f.info.pop("born_charges", None)
        plain.append(f)
        extra.append({} if born is None else {"born_charges": np.asarray(born).reshape(f.n_atoms, 9)})
    write_frames(path, plain, extra_arrays=extra)


def read_clusters(path: str | os.PathLike) -> list[Frame]:
    """Read clusters written by :func:`write_clusters` (Born charges back in ``info['born_charges']``)."""
    import ase.io

    from polarff.io import read_frames

    frames = read_frames(path)
    for f, atoms in zip(frames, ase.io.read(str(path), index=":")):
        if "born_charges" in atoms.arrays:
            f.info["born_charges"] = np.asarray(atoms.arrays["born_charges"], float).reshape(f.n_atoms, 3, 3)
    return frames


# ------------------------------------------------------------------------------------ calibration
@dataclass
class CalibrationEntry:
    """One calibration cluster labelled by DFT, GFN2-xTB and D4.

    Attributes
    ----------
    name : str
        e.g. ``'H2O'``, ``'Na+(H2O)2'``.
    symbols : list of str
    positions : list
        Å, (N, 3).
    total_charge : float
    alpha_dft, alpha_gfn2 : list
        3×3 tensors (Å³).
    d4_atomic : list
        D4 atomic polarizabilities (Å³), (N,).
    seconds_dft, seconds_gfn2 : float
        Wall time of the seven finite-field calculations of each method.
    n_basis : int
        DFT basis functions.
    """

    name: str
    symbols: list[str]
    positions: list
    total_charge: float
    alpha_dft: list
    alpha_gfn2: list
    d4_atomic: list
    seconds_dft: float
    seconds_gfn2: float
    n_basis: int

    def iso(self, which: str) -> float:
        """Isotropic α (Å³) of ``'dft'``, ``'gfn2'`` or ``'d4'`` (sum of atomic values)."""
        if which == "d4":
            return float(np.sum(self.d4_atomic))
        return float(np.trace(np.asarray(getattr(self, f"alpha_{which}"))) / 3.0)


@dataclass
class Calibration:
    """Calibration of cheap polarizabilities against DFT on small clusters (see :func:`calibrate`)."""

    method: str
    entries: list[CalibrationEntry] = field(default_factory=list)
    scales: dict[str, dict[str, float]] = field(default_factory=dict)
    tie: list[list[str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"method": self.method, "tie": self.tie, "scales": self.scales,
                "entries": [asdict(e) for e in self.entries], "summary": self.summary()}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(d["method"], [CalibrationEntry(**e) for e in d.get("entries", [])], d.get("scales", {}),
                   d.get("tie", []))

    def summary(self) -> list[dict]:
        """Per cluster: isotropic α of each method (Å³), DFT cost (s) and, once scales are fitted, the
        scaled prediction ``alpha_<base>_scaled`` (Å³) of each base method."""
        rows = []
        for e in self.entries:
            row = {"name": e.name, "n_atoms": len(e.symbols), "n_basis": e.n_basis, "alpha_dft": e.iso("dft"),
                   "alpha_gfn2": e.iso("gfn2"), "alpha_d4": e.iso("d4"), "seconds_dft": e.seconds_dft,
                   "seconds_gfn2": e.seconds_gfn2}
            for base, scales in self.scales.items():
                row[f"alpha_{base}_scaled"] = float(np.sum(_base_atomic(e, base) * np.array(
                    [scales.get(s, np.nan) for s in e.symbols])))
            rows.append(row)
        return rows

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON (atomically)."""
        write_json(path, self.to_dict())


def calibration_clusters(frames: Sequence[Frame] = (), max_waters: int = 3, ions: Sequence[str] = ("Na", "Cl"),
                         dimer: bool = True, bare_ions: bool = True) -> list[tuple[str, Frame]]:
    """Small clusters for the DFT calibration: water monomer, water dimer, the bare ions (if
    ``bare_ions``) and ion(H₂O)ₙ for n = 1…``max_waters``.

    The monomer has the experimental gas-phase geometry; the dimer and the ion clusters are cut from the
    first frame of ``frames`` that contains the centre (nearest whole water molecules, no counter-ions),
    so they carry liquid-like geometries. The bare ions pin the ion's own polarizability, which the
    hydrated clusters alone hardly constrain (a Na⁺ adds almost nothing to a cluster's α).

    Returns
    -------
    list of (name, Frame)
    """
    out = [("H2O", water_monomer())]
    for frame in frames:
        mol = None
        if dimer and not any(name == "(H2O)2" for name, _ in out):
            oxygens = [i for i, s in enumerate(frame.symbols) if s == "O"]
            if oxygens:
                mol = molecules(frame)
                out.append(("(H2O)2", cut_cluster(frame, oxygens[0], n_molecules=1, neighbours="neutral",
                                                  molecule_index=mol)))
        for ion in ions:
            if any(name.startswith(ion) for name, _ in out) or ion not in frame.symbols:
                continue
            mol = molecules(frame) if mol is None else mol
            centre = frame.symbols.index(ion)
            sign = "+" if FORMAL_CHARGES.get(ion, 0) > 0 else "-"
            for k in range(0 if bare_ions else 1, max_waters + 1):
                name = f"{ion}{sign}(H2O){k}" if k else f"{ion}{sign}"
                out.append((name, cut_cluster(frame, centre, n_molecules=k, neighbours="neutral",
                                              molecule_index=mol)))
    return out


def calibrate(clusters: Sequence[tuple[str, Frame]], path: str | os.PathLike | None = None, *,
              xc: str = "b3lyp", basis: str = "def2-svpd", threads: int = 1,
              tie: Sequence[Sequence[str]] = (("H", "O"),), progress: bool = True) -> Calibration:
    """Label calibration clusters with DFT, GFN2-xTB and D4 and fit per-species scales; resumable.

    After each cluster the calibration is written to ``path`` (JSON, atomically); a rerun skips the
    clusters already there (same name and geometry).

    Parameters
    ----------
    clusters : sequence of (name, Frame)
        From :func:`calibration_clusters`.
    path : path-like, optional
        JSON file to write (and resume from).
    xc, basis, threads :
        DFT settings (see :func:`dft_response`).
    tie : groups of species sharing one scale (default: H and O, which occur only together in water).
    progress : bool
        Print one line per cluster (α of each method, DFT cost) to stderr.

    Returns
    -------
    Calibration
        Entries and ``scales['d4']`` / ``scales['gfn2']`` (see :func:`fit_species_scales`).
    """
    import sys

    from polarff.label import d4_polarizabilities

    method = f"{xc.upper()}/{basis} (pyscf) finite field ±{DFT_FIELD_AU:g} a.u."
    calib = Calibration(method, tie=[list(t) for t in tie])
    if path is not None and Path(path).exists():
        with open(path) as handle:
            old = Calibration.from_dict(json.load(handle))
        if old.method == method:
            calib.entries = old.entries
    for name, frame in clusters:
        if any(e.name == name and np.allclose(e.positions, frame.positions, atol=1e-6) for e in calib.entries):
            continue
        dft = dft_response(frame, xc=xc, basis=basis, threads=threads)
        gfn2 = gfn2_response(frame)
        calib.entries = [e for e in calib.entries if e.name != name] + [CalibrationEntry(
            name, list(frame.symbols), frame.positions.tolist(), float(frame.total_charge),
            dft.polarizability.tolist(), gfn2.polarizability.tolist(), d4_polarizabilities(frame).tolist(),
            dft.seconds, gfn2.seconds, dft.n_basis)]
        if progress:
            e = calib.entries[-1]
            print(f"[calibrate] {name:12s} α DFT {e.iso('dft'):7.3f}  GFN2 {e.iso('gfn2'):7.3f}  "
                  f"D4 {e.iso('d4'):7.3f} Å³   DFT {dft.seconds:6.1f} s ({dft.n_basis} basis functions)",
                  file=sys.stderr, flush=True)
        if path is not None:
            calib.save(path)
    calib.scales = {base: fit_species_scales(calib.entries, base, tie) for base in ("d4", "gfn2")}
    if path is not None:
        calib.save(path)
    return calib


def fit_species_scales(entries: Sequence[CalibrationEntry], base: str = "d4",
                       tie: Sequence[Sequence[str]] = (("H", "O"),)) -> dict[str, float]:
    """Per-species factors s_X that map ``base`` atomic polarizabilities onto DFT cluster values.

    Non-negative least squares over clusters c of Σ_X s_X A_cX = α_DFT,c (isotropic), where A_cX is the
    sum of the base atomic polarizabilities of species X in cluster c. For ``base='d4'`` these are the D4
    atomic values; GFN2-xTB gives only a cluster tensor, so for ``base='gfn2'`` it is split over atoms in
    proportion to their D4 values. Species in one ``tie`` group share a factor (H and O always come
    together in water clusters, so they cannot be told apart).

    Returns
    -------
    dict of str to float
        Factor per species present in the entries.
    """
    from scipy.optimize import nnls

    if base not in ("d4", "gfn2"):
        raise ConfigError(f"base must be 'd4' or 'gfn2', found {base!r}")
    species = sorted({s for e in entries for s in e.symbols})
    groups: list[list[str]] = [list(g) for g in tie if any(s in species for s in g)]
    groups += [[s] for s in species if not any(s in g for g in groups)]
    design = np.zeros((len(entries), len(groups)))
    target = np.zeros(len(entries))
    for c, e in enumerate(entries):
        atomic = _base_atomic(e, base)
        for g, members in enumerate(groups):
            design[c, g] = sum(a for a, s in zip(atomic, e.symbols) if s in members)
        target[c] = e.iso("dft")
    if len(entries) == 0:
        raise ConfigError("fit_species_scales: no calibration entries")
    factors, _ = nnls(design, target)
    return {s: float(factors[g]) for g, members in enumerate(groups) for s in members if s in species}


def _base_atomic(entry: CalibrationEntry, base: str) -> np.ndarray:
    """Atomic polarizabilities (Å³) of ``base``: D4 values, or the GFN2 cluster α split like D4."""
    atomic = np.asarray(entry.d4_atomic, float)
    if base == "gfn2":
        atomic = atomic * entry.iso("gfn2") / atomic.sum()
    return atomic


def apply_species_scales(frames: Sequence[Frame], scales: dict[str, float], *, source: str = "") -> list[Frame]:
    """Copies of ``frames`` with per-atom ``polarizabilities`` multiplied by the species factor.

    The factors and their source are stored in each frame's metadata (``info['alpha_scale']``: all factors
    of the calibration, e.g. ``"Cl:1.01 H:0.95 Na:0.06 O:0.95"``, the same for every frame, and
    ``info['alpha_scale_source']``), so they travel with the data set's extxyz file and into the model card.

    Raises
    ------
    InputError
        If a frame holds a species without a factor, or has no polarizability label.
    """
    out = []
    for f in frames:
        missing = sorted(set(f.symbols) - set(scales))
        if missing:
            raise InputError("no polarizability scale for these species", file=f.info.get("source"),
                             frame=f.info.get("index"), field="alpha_scale", expected=sorted(scales), found=missing)
        if "polarizabilities" not in f.labels:
            raise InputError("frame has no per-atom polarizabilities to scale", file=f.info.get("source"),
                             frame=f.info.get("index"), field="polarizabilities", expected="label present",
                             found="absent")
        g = copy.deepcopy(f)
        if "alpha_scale" in g.info:
            raise InputError("polarizabilities were already scaled", file=f.info.get("source"),
                             frame=f.info.get("index"), field="alpha_scale", expected="unscaled data",
                             found=g.info["alpha_scale"])
        g.labels["polarizabilities"] = g.labels["polarizabilities"] * np.array([scales[s] for s in g.symbols])
        g.info["alpha_scale"] = " ".join(f"{s}:{scales[s]:.5g}" for s in sorted(scales))  # the whole calibration
        g.info["alpha_scale_source"] = source
        out.append(g.validate())
    return out
