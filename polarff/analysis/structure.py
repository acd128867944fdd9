"""Liquid structure from trajectories: radial distribution functions, first-peak positions, density.

Units: positions and boxes in nm (orthorhombic boxes, minimum image), peak positions in Å, densities in
g/cm³. Experimental references used by polarff: water O–O first peak 2.80 Å (X-ray; Skinner et al.,
J. Chem. Phys. 138, 074506 (2013)); in NaCl(aq), Cl–O 3.16 Å (diffraction, reviewed by Ohtaki & Radnai,
Chem. Rev. 93, 1157 (1993)) and Na–O 2.38 Å (X-ray diffraction 2.384 ± 0.003 Å, EXAFS 2.37 ± 0.02 Å, Na⁺
coordination 5.5 ± 0.3: Galib et al., J. Chem. Phys. 146, 084504 (2017); older diffraction data spread over
2.35–2.50 Å).
"""

from __future__ import annotations

import numpy as np

from polarff.errors import InputError

#: Avogadro constant, 1/mol.
AVOGADRO = 6.02214076e23
#: Cohesive energy of liquid water at 298 K, kJ/mol per molecule: −(ΔH_vap − RT) with ΔH_vap = 43.99 kJ/mol
#: (CRC Handbook of Chemistry and Physics, enthalpy of vaporization of water at 25 °C) and RT = 2.48 kJ/mol.
WATER_COHESIVE_ENERGY_KJ_MOL = -41.5
#: Hydration energy of the Na⁺ + Cl⁻ pair at 298 K, kJ/mol: ΔH_hyd = ΔH_solution (∞ dilution, +3.9) − lattice
#: enthalpy (786; CRC Handbook of Chemistry and Physics, 'Lattice energies') = −782, and ΔU = ΔH + 2RT (two gas
#: particles less).
NACL_HYDRATION_ENERGY_KJ_MOL = -777.0
#: Energy terms of a trajectory that :func:`pair_hydration_energy` splits the difference into.
ENERGY_TERMS = {"total": "potential_energy", "permanent": "polarff_permanent_energy",
                "induction": "polarff_induction_energy", "electronegativity": "polarff_electronegativity_energy"}
#: First-peak positions of g(r) in Å that polarff compares with (see the module docstring).
EXPERIMENT_PEAK_A = {("O", "O"): 2.80, ("Na", "O"): 2.38, ("Cl", "O"): 3.16}


def radial_distribution(positions: np.ndarray, boxes: np.ndarray, symbols, first: str, second: str,
                        r_max_nm: float = 0.6, bin_nm: float = 0.002) -> tuple[np.ndarray, np.ndarray]:
    """g(r) between the atoms of two species, averaged over frames.

    Parameters
    ----------
    positions : ndarray, shape (F, N, 3)
        Frames, nm.
    boxes : ndarray, shape (F, 3, 3)
        Orthorhombic box vectors (rows), nm.
    symbols : sequence of str, length N
        Chemical symbols.
    first, second : str
        The two species (the same species gives the like-pair g(r)).
    r_max_nm, bin_nm : float
        Largest distance and bin width, nm (``r_max_nm`` should stay below half the box).

    Returns
    -------
    r_nm, g : ndarray
        Bin centres (nm) and g(r) (dimensionless; 1 for an ideal gas).
    """
    symbols = np.asarray(symbols).astype(str)
    a = np.flatnonzero(symbols == first)
    b = np.flatnonzero(symbols == second)
    if not len(a) or not len(b):
        raise InputError("species missing for g(r)", field="symbols", expected=f"{first} and {second}",
                         found=sorted(set(symbols)))
    edges = np.arange(0.0, r_max_nm + 0.5 * bin_nm, bin_nm)
    counts = np.zeros(len(edges) - 1)
    lengths = np.diagonal(np.asarray(boxes, dtype=np.float64), axis1=1, axis2=2)
    for x, length in zip(np.asarray(positions, dtype=np.float64), lengths):
        vectors = x[a][:, None, :] - x[b][None, :, :]
        vectors -= length * np.round(vectors / length)
        distances = np.linalg.norm(vectors, axis=-1)
        counts += np.histogram(distances[distances > 1e-9], edges)[0]
    centres = 0.5 * (edges[1:] + edges[:-1])
    n_pairs_per_frame = len(a) * (len(b) - (1 if first == second else 0))
    mean_volume = float(np.mean(np.prod(lengths, axis=1)))
    ideal = n_pairs_per_frame / mean_volume * 4.0 * np.pi * centres**2 * bin_nm
    return centres, counts / (len(positions) * ideal)


def coordination_number(positions: np.ndarray, boxes: np.ndarray, centres, partners, cutoff_nm: float) -> float:
    """Mean number of ``partners`` atoms within ``cutoff_nm`` of each of the ``centres`` atoms.

    Parameters
    ----------
    positions : ndarray, shape (F, N, 3)
        Frames, nm.
    boxes : ndarray, shape (F, 3, 3)
        Orthorhombic box vectors (rows), nm; distances use the minimum image.
    centres, partners : sequence of int
        Atom indices.
    cutoff_nm : float
        Shell radius, nm.

    Returns
    -------
    float
        Count averaged over frames and centres.
    """
    d = _partner_vectors(positions, boxes, centres, partners)
    return float((np.linalg.norm(d, axis=-1) < cutoff_nm).sum(axis=-1).mean())


#: Ion–ion distance (nm) within which two ions count as in contact: they share a first-shell water or touch.
#: Na–Na: two Na–O bonds of 0.24 nm at an Na–O–Na angle up to ~110° (a shared water); Cl–Cl: two Cl–O of 0.32 nm
#: at up to ~100°; Na–Cl: the first minimum of the Na–Cl g(r) (contact ion pair), ~0.36 nm.
ION_CONTACT_NM = {("Na", "Na"): 0.40, ("Cl", "Cl"): 0.50, ("Na", "Cl"): 0.36}


def ion_pairing(positions: np.ndarray, boxes: np.ndarray, centres, partners, contact_nm: float) -> dict:
    """How close each ion's nearest partner ion is, against uniformly random placement.

    Parameters
    ----------
    positions : ndarray, shape (F, N, 3)
        Frames, nm.
    boxes : ndarray, shape (F, 3, 3)
        Orthorhombic box vectors (rows), nm; distances use the minimum image.
    centres, partners : sequence of int
        Atom indices; an atom is never its own partner (for like ions pass the same indices twice).
    contact_nm : float
        Distance (nm) within which a partner counts as in contact (:data:`ION_CONTACT_NM`).

    Returns
    -------
    dict
        ``nearest_nm``: distance to the nearest partner, averaged over frames and centres; ``contact_fraction``:
        fraction of (frame, centre) with a partner within ``contact_nm``; ``random_contact_fraction``: the same
        for partners placed uniformly at random in the box, 1 − (1 − 4π r³ / 3V)^n with n the partners per
        centre (the ideal-solution reference; a ratio far above 1 is aggregation, far below is avoidance).

    Raises
    ------
    InputError
        If a centre has no partner other than itself, or ``contact_nm`` is not below half the shortest box edge.
    """
    centres, partners = np.asarray(centres, dtype=int), np.asarray(partners, dtype=int)
    boxes = np.asarray(boxes, dtype=np.float64)
    edges = np.diagonal(boxes, axis1=1, axis2=2)
    if not 0.0 < contact_nm < 0.5 * float(edges.min()):
        raise InputError(f"ion_pairing: contact distance must be in (0, half the shortest box edge = "
                         f"{0.5 * float(edges.min()):.3f} nm), found {contact_nm} nm")
    self_pair = centres[:, None] == partners[None, :]
    n_partners = int(partners.size) - int(self_pair.sum(axis=1).max(initial=0))
    if not len(centres) or n_partners < 1:
        raise InputError(f"ion_pairing: every centre needs a partner other than itself; found {len(centres)} "
                         f"centre(s) and {len(partners)} partner(s)")
    r = np.linalg.norm(_partner_vectors(positions, boxes, centres, partners), axis=-1)
    r[:, self_pair] = np.inf
    nearest = r.min(axis=2)
    volume = float(np.prod(edges, axis=1).mean())
    shell = 4.0 / 3.0 * np.pi * contact_nm ** 3 / volume
    return {"nearest_nm": float(nearest.mean()), "contact_fraction": float((nearest < contact_nm).mean()),
            "random_contact_fraction": float(1.0 - (1.0 - shell) ** n_partners), "contact_nm": float(contact_nm)}


def ion_pairing_by_kind(positions: np.ndarray, boxes: np.ndarray, symbols) -> dict[str, dict]:
    """:func:`ion_pairing` for every pair kind of :data:`ION_CONTACT_NM` ("Na-Na", "Cl-Cl", "Na-Cl") that the
    atoms have (like ions need two) and whose contact distance is below half the shortest box edge."""
    symbols = np.asarray(symbols).astype(str)
    half_edge = 0.5 * float(np.diagonal(np.asarray(boxes, dtype=np.float64), axis1=1, axis2=2).min())
    out = {}
    for (first, second), contact in ION_CONTACT_NM.items():
        centres, partners = np.flatnonzero(symbols == first), np.flatnonzero(symbols == second)
        if contact < half_edge and len(centres) and len(partners) > (1 if first == second else 0):
            out[f"{first}-{second}"] = ion_pairing(positions, boxes, centres, partners, contact)
    return out


def _partner_vectors(positions: np.ndarray, boxes: np.ndarray, centres, partners) -> np.ndarray:
    """Minimum-image vectors partner − centre (nm), shape (F, len(centres), len(partners), 3)."""
    positions = np.asarray(positions, dtype=np.float64)
    edges = np.diagonal(np.asarray(boxes, dtype=np.float64), axis1=1, axis2=2)[:, None, None, :]
    d = positions[:, partners][:, None, :, :] - positions[:, centres][:, :, None, :]
    return d - edges * np.round(d / edges)


def shell_offset(positions: np.ndarray, boxes: np.ndarray, centre: int, partners, cutoff_nm: float) -> np.ndarray:
    """Distance (nm) from an atom to the centroid of its first shell, frame by frame.

    A measure of how asymmetric the cage around an ion is: 0 when the shell atoms (``partners`` within
    ``cutoff_nm``, minimum image) surround it evenly, growing as the ion sits to one side of its shell.

    Parameters
    ----------
    positions : ndarray, shape (F, N, 3)
        Frames, nm.
    boxes : ndarray, shape (F, 3, 3)
        Orthorhombic box vectors (rows), nm.
    centre : int
        Index of the ion.
    partners : sequence of int
        Candidate shell atoms (e.g. the water oxygens).
    cutoff_nm : float
        Shell radius, nm.

    Returns
    -------
    ndarray, shape (F,)
        Offset per frame (nm); NaN for a frame with an empty shell.
    """
    d = _partner_vectors(positions, boxes, [centre], partners)[:, 0]  # (F, P, 3)
    inside = (np.linalg.norm(d, axis=-1) < cutoff_nm)[..., None]
    count = inside.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = (d * inside).sum(axis=1) / count
    return np.linalg.norm(centroid, axis=-1)


def first_peak(r_nm: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """Position (Å) and height of the highest peak of g(r).

    The maximum of a 5-bin running mean, refined by a parabola through it and its two neighbours (a
    precision well below the bin width for the sharp first peaks of liquids); the height is the raw g.
    """
    smooth = np.convolve(g, np.ones(5) / 5.0, mode="same")
    k = int(np.clip(np.argmax(smooth), 1, len(g) - 2))
    y0, y1, y2 = smooth[k - 1], smooth[k], smooth[k + 1]
    curvature = y0 - 2.0 * y1 + y2
    shift = 0.5 * (y0 - y2) / curvature if curvature != 0 else 0.0
    step = r_nm[1] - r_nm[0]
    return float((r_nm[k] + shift * step) * 10.0), float(g[k])


def density_g_cm3(masses: np.ndarray, boxes: np.ndarray, n_blocks: int = 5) -> tuple[float, float]:
    """Mean mass density (g/cm³) over frames and its standard error from contiguous blocks."""
    volumes_cm3 = np.abs(np.linalg.det(np.asarray(boxes, dtype=np.float64))) * 1e-21
    rho = float(np.sum(masses)) / AVOGADRO / volumes_cm3
    blocks = np.array([block.mean() for block in np.array_split(rho, n_blocks)])
    return float(rho.mean()), float(blocks.std(ddof=1) / np.sqrt(n_blocks))


def energy_per_water(potential_energies: np.ndarray, symbols) -> float:
    """Mean potential energy per water molecule (kJ/mol), counting molecules by their O atoms.

    For rigid water in polarff or TIP3P the energy of an isolated molecule is zero (no intramolecular
    charge or LJ pairs, no field), so for pure water this is minus the model's vaporization energy;
    compare with :data:`WATER_COHESIVE_ENERGY_KJ_MOL`.
    """
    n_waters = int(np.sum(np.asarray(symbols).astype(str) == "O"))
    return float(np.mean(potential_energies)) / n_waters


def _block_mean(values: np.ndarray, n_blocks: int) -> tuple[float, float]:
    """:func:`polarff.analysis.stats.block_average` with at most ``n_blocks`` blocks of ≥ 2 samples; a series
    too short for two such blocks gets its plain mean and a NaN error."""
    from polarff.analysis.stats import block_average

    values = np.asarray(values, dtype=float)
    n = min(n_blocks, len(values) // 2)
    if n < 2:
        return float(values.mean()), float("nan")
    estimate = block_average(values, n)
    return estimate.value, estimate.error


def pair_hydration_energy(salt: dict, water: dict, n_blocks: int = 5) -> dict[str, tuple[float, float]]:
    """Hydration energy of the ions (kJ/mol, ± standard error): ⟨U⟩(salt box) − ⟨U⟩(pure water), by term.

    With rigid water, an isolated molecule or ion has zero energy (polarff, TIP3P), so the difference is the
    energy of bringing the ions from the gas phase into the water, water reorganization included; compare
    the NaCl pair with :data:`NACL_HYDRATION_ENERGY_KJ_MOL`.

    Parameters
    ----------
    salt, water : dict
        Trajectories (:func:`polarff.simulate.load_trajectory`) with ``symbols`` and the energies of
        :data:`ENERGY_TERMS`, both with the same number of waters.
    n_blocks : int
        Blocks for the error bars.

    Returns
    -------
    dict
        ``total`` always; ``permanent``, ``induction``, ``electronegativity`` (for a model with that term)
        and ``rest`` (total − those: the Lennard-Jones fixed terms) when the salt trajectory has non-zero
        polarff energy terms.

    Raises
    ------
    InputError
        If the two boxes hold different numbers of waters.
    """
    n_salt, n_water = (int(np.sum(np.asarray(t["symbols"]).astype(str) == "O")) for t in (salt, water))
    if n_salt != n_water:
        raise InputError("salt and water boxes differ", field="symbols (O count)",
                         expected=f"{n_salt} waters as in the salt box", found=f"{n_water} in the water box")
    series = {}
    for name, key in ENERGY_TERMS.items():
        if key in salt and key in water and (name == "total" or np.any(np.asarray(salt[key]) != 0)):
            series[name] = (np.asarray(salt[key]), np.asarray(water[key]))
    if "permanent" in series and "induction" in series:
        parts = [name for name in ("permanent", "induction", "electronegativity") if name in series]
        series["rest"] = tuple(series["total"][k] - sum(series[name][k] for name in parts) for k in (0, 1))
    out = {}
    for name, (s, w) in series.items():
        (a, ea), (b, eb) = _block_mean(s, n_blocks), _block_mean(w, n_blocks)
        out[name] = (a - b, float(np.hypot(ea, eb)))
    return out


def ion_environment_charge(positions: np.ndarray, boxes: np.ndarray, charges: np.ndarray,
                           residue_index: np.ndarray, ion: int, radii_nm, n_blocks: int = 5
                           ) -> list[tuple[float, float]]:
    """Net charge (e) of an ion together with the molecules around it, as a function of radius.

    Q(R) = q_ion + Σ_m Q_m over the solvent molecules (residues of more than one atom; other ions are left
    out) whose centroid lies within R of the ion (minimum image), with Q_m the molecule's net charge in that
    frame. In a real electrolyte the ion carries exactly its oxidation number (±1) through the liquid
    (topological quantization of charge transport, F. Grasselli and S. Baroni, Nat. Phys. 15, 967 (2019)); a
    model whose Q(R) stays short of ±1 transports less charge per ion with its own charges than the physical
    system does (docs/charge-quantization.md).

    Parameters
    ----------
    positions : ndarray (T, N, 3)
        Unwrapped positions (nm); molecules whole.
    boxes : ndarray (T, 3, 3)
        Orthorhombic boxes (nm).
    charges : ndarray (T, N) or (N,)
        Per-frame (or fixed) charges (e).
    residue_index : ndarray (N,)
        Molecule of each atom.
    ion : int
        Atom index of the ion (a residue of its own).
    radii_nm : sequence of float
        Radii R (nm); at most half the smallest box edge.
    n_blocks : int
        Contiguous blocks for the standard error.

    Returns
    -------
    list of (float, float)
        Mean Q(R) and its standard error, per radius.

    Raises
    ------
    InputError
        If a radius exceeds half the smallest box edge or the shapes disagree.
    """
    positions = np.asarray(positions, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    n_frames, n_atoms = positions.shape[:2]
    q = np.asarray(charges, dtype=np.float64)
    residues = np.asarray(residue_index)
    if (q.shape not in ((n_atoms,), (n_frames, n_atoms)) or residues.shape != (n_atoms,)
            or boxes.shape != (n_frames, 3, 3)):
        raise InputError("ion environment charge: shapes disagree", field="positions/charges/residue_index/box",
                         expected=f"({n_frames}, {n_atoms}) or ({n_atoms},) charges, ({n_atoms},) residues, "
                                  f"({n_frames}, 3, 3) boxes", found=f"{q.shape}, {residues.shape}, {boxes.shape}")
    q = np.broadcast_to(q, (n_frames, n_atoms))
    edges = np.diagonal(boxes, axis1=1, axis2=2)
    radii = np.asarray(radii_nm, dtype=float)
    if radii.max() > 0.5 * edges.min() + 1e-12:
        raise InputError("ion environment charge: radius beyond the minimum image", field="radii_nm",
                         expected=f"≤ {0.5 * edges.min():.3f} nm (half the smallest box edge)",
                         found=f"{radii.max():.3f} nm")
    members = [np.flatnonzero(residues == r) for r in dict.fromkeys(residues.tolist())]
    members = [m for m in members if len(m) > 1]
    centroids = np.stack([positions[:, m].mean(axis=1) for m in members], axis=1)  # (T, M, 3)
    molecule_q = np.stack([q[:, m].sum(axis=1) for m in members], axis=1)  # (T, M)
    d = centroids - positions[:, ion][:, None, :]
    d -= edges[:, None, :] * np.round(d / edges[:, None, :])
    r = np.linalg.norm(d, axis=-1)
    series = [q[:, ion] + np.where(r < radius, molecule_q, 0.0).sum(axis=1) for radius in radii]
    return [_block_mean(s, n_blocks) for s in series]
