"""Build and sample solvated ion boxes with a fixed-charge baseline (TIP3P + Joung–Cheatham ions).

This module makes the *unlabelled* reference structures: a cubic periodic box of rigid TIP3P water with
``n_pairs`` monovalent ion pairs (NaCl, KCl or LiCl), minimised, equilibrated and sampled with OpenMM on
the CPU platform. Reference labels are added afterwards by :mod:`polarff.label`.

Units: OpenMM works in nm; the :class:`polarff.data.Frame` objects returned hold Å (positions, cell).

Typical use::

    from polarff.build import sample_ion_dataset
    sample_ion_dataset("build/nacl_unlabelled.xyz", "NaCl", [1, 2, 3], n_waters=64, n_frames=70, seed=7)
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from polarff.data import Frame
from polarff.errors import ConfigError

#: Ion pairs known to :func:`build_ion_box`: (cation residue, cation element, anion residue, anion element).
ION_PAIRS: dict[str, tuple[str, str, str, str]] = {
    "NaCl": ("NA", "Na", "CL", "Cl"),
    "KCl": ("K", "K", "CL", "Cl"),
    "LiCl": ("LI", "Li", "CL", "Cl"),
}

#: Molar masses (g/mol).
MOLAR_MASS = {"H": 1.00794, "O": 15.9994, "Li": 6.94, "Na": 22.98977, "K": 39.0983, "Cl": 35.453}
WATER_MOLAR_MASS_KG = 0.01801528
#: Volume of one water molecule at 0.99705 g/cm^3 (liquid water, 298 K), in Å^3.
WATER_VOLUME_A3 = WATER_MOLAR_MASS_KG * 1e3 / 0.99705 / 0.602214076
#: Infinite-dilution partial molar volumes of the salts at 298 K (cm^3/mol), from the conventional ionic
#: values (Millero, Chem. Rev. 71, 147 (1971)): Li+ -0.88, Na+ -1.21, K+ 9.02, Cl- 17.83.
SALT_PARTIAL_MOLAR_VOLUME_CM3 = {"NaCl": 16.62, "KCl": 26.85, "LiCl": 16.95}

#: Rigid TIP3P geometry (Jorgensen et al., J. Chem. Phys. 79, 926 (1983)).
TIP3P_R_OH_A = 0.9572
TIP3P_ANGLE_DEG = 104.52

FORCEFIELD_NAMES = ("fixed_charge_baseline", "polarff_fixed_terms", "polarff_nacl_gfn2_fixed_terms",
                    "polarff_nacl_gfn2_esp_fixed_terms", "polarff_nacl_gfn2_dipole_fixed_terms",
                    "polarff_nacl_gfn2_water111_fixed_terms", "polarff_nacl_gfn2_dipole_chi_fixed_terms",
                    "polarff_nacl_gfn2_water113_fixed_terms", "polarff_nacl_gfn2_water126_fixed_terms",
                    "polarff_nacl_gfn2_water126_ionradii_fixed_terms", "polarff_nacl_gfn2_water126_molecular_fixed_terms")


def forcefield_path(name: str) -> str:
    """Path of a force-field XML shipped with polarff.

    Looks in ``<repository root>/forcefields`` (source checkout or editable install) and then in
    ``polarff/forcefields`` (a copy inside the installed package, if one was packaged).

    Parameters
    ----------
    name : str
        One of :data:`FORCEFIELD_NAMES` (with or without ``.xml``).

    Returns
    -------
    str
        Absolute path of the XML file, loadable with ``openmm.app.ForceField(path)``.

    Raises
    ------
    ConfigError
        If the name is unknown or the file cannot be found.
    """
    stem = name[:-4] if name.endswith(".xml") else name
    if stem not in FORCEFIELD_NAMES:
        raise ConfigError(f"unknown force field '{name}' (expected one of {list(FORCEFIELD_NAMES)})")
    here = Path(__file__).resolve().parent
    candidates = [here.parent / "forcefields" / f"{stem}.xml", here / "forcefields" / f"{stem}.xml"]
    for path in candidates:
        if path.is_file():
            return str(path)
    raise ConfigError(f"force field file {stem}.xml not found; looked in "
                      f"{[str(p.parent) for p in candidates]} (reinstall polarff from a source checkout)")


def molality_to_pairs(molality: float, n_waters: int) -> int:
    """Number of ion pairs closest to ``molality`` (mol/kg of water) for ``n_waters`` water molecules."""
    if not (molality >= 0 and math.isfinite(molality)):
        raise ConfigError(f"molality must be a finite number >= 0 mol/kg (found {molality})")
    _check_count("n_waters", n_waters, minimum=1)
    return int(round(molality * n_waters * WATER_MOLAR_MASS_KG))


def pairs_to_molality(n_pairs: int, n_waters: int) -> float:
    """Molality (mol/kg of water) of ``n_pairs`` ion pairs in ``n_waters`` water molecules."""
    return n_pairs / (n_waters * WATER_MOLAR_MASS_KG)


def box_length_nm(ion: str, n_pairs: int, n_waters: int, density_g_cm3: float | None = None) -> float:
    """Edge of the cubic box (nm).

    By default the volume is ``n_waters`` molecules of liquid water at 0.997 g/cm^3 plus the salt's
    infinite-dilution partial molar volume per pair (so the water in the box is at ~1 g/cm^3 and the
    solution density is close to experiment: 1.10 g/cm^3 for 2.6 mol/kg NaCl). If ``density_g_cm3`` is
    given, the volume is the total mass at that density instead.
    """
    _check_ion(ion)
    if density_g_cm3 is None:
        volume_a3 = (n_waters * WATER_VOLUME_A3
                     + n_pairs * SALT_PARTIAL_MOLAR_VOLUME_CM3[ion] / 0.602214076)
    else:
        if not density_g_cm3 > 0:
            raise ConfigError(f"density_g_cm3 must be > 0 (found {density_g_cm3})")
        volume_a3 = total_mass_g_mol(ion, n_pairs, n_waters) / 0.602214076 / density_g_cm3
    return volume_a3 ** (1.0 / 3.0) / 10.0


def total_mass_g_mol(ion: str, n_pairs: int, n_waters: int) -> float:
    """Total mass of the box (g/mol)."""
    _, cation, _, anion = ION_PAIRS[ion]
    water = 2 * MOLAR_MASS["H"] + MOLAR_MASS["O"]
    return n_waters * water + n_pairs * (MOLAR_MASS[cation] + MOLAR_MASS[anion])


def build_ion_box(ion: str, n_pairs: int, n_waters: int, seed: int, *,
                  density_g_cm3: float | None = None):
    """Cubic periodic box of rigid TIP3P water with ``n_pairs`` ion pairs.

    Molecules sit on a jittered cubic lattice with ``n_waters + 2 n_pairs`` occupied sites; ions take
    randomly chosen sites ("replace waters"), waters get random orientations, rejecting orientations that
    bring any atom closer than 1.3 Å to an atom already placed (minimum image).

    Parameters
    ----------
    ion : {'NaCl', 'KCl', 'LiCl'}
        Salt.
    n_pairs : int
        Number of cation–anion pairs (>= 0).
    n_waters : int
        Number of water molecules (>= 1).
    seed : int
        Seed of the placement; the same seed gives the same box.
    density_g_cm3 : float, optional
        Target solution density; default: water at 0.997 g/cm^3 plus the salt's partial molar volume
        (see :func:`box_length_nm`).

    Returns
    -------
    topology : openmm.app.Topology
        Waters (residue HOH: O, H1, H2) first, then cations, then anions (residues NA/K/LI and CL);
        periodic box vectors set.
    positions_nm : ndarray, shape (N, 3)
        Positions in nm, inside ``[0, box_nm)``.
    box_nm : float
        Cubic box edge in nm.
    """
    _check_ion(ion)
    _check_count("n_pairs", n_pairs, minimum=0)
    _check_count("n_waters", n_waters, minimum=1)
    box_nm = box_length_nm(ion, n_pairs, n_waters, density_g_cm3)
    rng = np.random.default_rng(seed)
    centres_a = _lattice_sites(n_waters + 2 * n_pairs, box_nm * 10.0, rng)
    ion_sites = rng.choice(len(centres_a), size=2 * n_pairs, replace=False)
    is_ion = np.zeros(len(centres_a), dtype=bool)
    is_ion[ion_sites] = True
    water_centres = centres_a[~is_ion]
    ion_centres = centres_a[ion_sites]  # first n_pairs cations, then n_pairs anions
    placed = [ion_centres]
    waters = []
    for centre in water_centres:
        molecule = _place_water(centre, np.concatenate(placed), box_nm * 10.0, rng)
        waters.append(molecule)
        placed.append(molecule)
    positions_a = np.concatenate(waters + [ion_centres]) if waters else ion_centres
    positions_nm = np.mod(positions_a / 10.0, box_nm)
    topology = _make_topology(ion, n_pairs, n_waters, box_nm)
    return topology, positions_nm, float(box_nm)


def _lattice_sites(n_sites: int, box_a: float, rng: np.random.Generator) -> np.ndarray:
    """``n_sites`` distinct, randomly chosen points of a cubic lattice filling the box, jittered (Å)."""
    m = max(1, math.ceil(n_sites ** (1.0 / 3.0) - 1e-9))
    spacing = box_a / m
    grid = (np.stack(np.meshgrid(np.arange(m), np.arange(m), np.arange(m), indexing="ij"), -1)
            .reshape(-1, 3) + 0.5) * spacing
    chosen = grid[rng.permutation(len(grid))[:n_sites]]
    jitter = rng.uniform(-0.08, 0.08, size=chosen.shape) * spacing
    return chosen + jitter


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed rotation matrix (from a random unit quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _water_template() -> np.ndarray:
    """TIP3P water (O, H1, H2) in Å with O at the origin."""
    half = math.radians(TIP3P_ANGLE_DEG) / 2
    r = TIP3P_R_OH_A
    return np.array([[0.0, 0.0, 0.0], [r * math.sin(half), r * math.cos(half), 0.0],
                     [-r * math.sin(half), r * math.cos(half), 0.0]])


def _place_water(centre: np.ndarray, others: np.ndarray, box_a: float, rng: np.random.Generator,
                 min_distance_a: float = 1.3, tries: int = 200) -> np.ndarray:
    """Randomly oriented water with O at ``centre``; keeps the orientation farthest from ``others``."""
    template = _water_template()
    best, best_d = None, -1.0
    for _ in range(tries):
        molecule = centre + template @ _random_rotation(rng).T
        if len(others) == 0:
            return molecule
        d = molecule[:, None, :] - others[None, :, :]
        d -= box_a * np.round(d / box_a)
        closest = float(np.sqrt((d ** 2).sum(-1)).min())
        if closest >= min_distance_a:
            return molecule
        if closest > best_d:
            best, best_d = molecule, closest
    return best


def _make_topology(ion: str, n_pairs: int, n_waters: int, box_nm: float):
    from openmm import Vec3, unit
    from openmm.app import Element, Topology

    cation_res, cation_el, anion_res, anion_el = ION_PAIRS[ion]
    top = Topology()
    water_chain = top.addChain("W")
    oxygen, hydrogen = Element.getBySymbol("O"), Element.getBySymbol("H")
    for k in range(n_waters):
        res = top.addResidue("HOH", water_chain, id=str(k + 1))
        o = top.addAtom("O", oxygen, res)
        h1 = top.addAtom("H1", hydrogen, res)
        h2 = top.addAtom("H2", hydrogen, res)
        top.addBond(o, h1)
        top.addBond(o, h2)
    ion_chain = top.addChain("I")
    for res_name, symbol in ((cation_res, cation_el), (anion_res, anion_el)):
        for k in range(n_pairs):
            res = top.addResidue(res_name, ion_chain, id=str(k + 1))
            top.addAtom(res_name, Element.getBySymbol(symbol), res)
    top.setPeriodicBoxVectors([Vec3(box_nm, 0, 0), Vec3(0, box_nm, 0), Vec3(0, 0, box_nm)] * unit.nanometer)
    return top


def write_topology_pdb(topology, positions_nm: np.ndarray, box_nm: float, path: str | os.PathLike) -> None:
    """Write a box (OpenMM topology, positions in nm, cubic edge in nm) as a PDB file with CRYST1."""
    from openmm import Vec3, unit
    from openmm.app import PDBFile

    topology.setPeriodicBoxVectors([Vec3(box_nm, 0, 0), Vec3(0, box_nm, 0), Vec3(0, 0, box_nm)]
                                   * unit.nanometer)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        PDBFile.writeFile(topology, np.asarray(positions_nm) * unit.nanometer, handle)


def _derived_seed(seed: int, stream: int) -> int:
    """Positive 31-bit seed for OpenMM derived from ``seed`` (OpenMM treats 0 as 'random')."""
    return int(np.random.default_rng([seed, stream]).integers(1, 2 ** 31 - 1))


def _make_simulation(topology, box_nm: float, seed: int, threads: int, temperature_k: float,
                     timestep_fs: float, minimise_steps: int = 500):
    """CPU context with a CompoundIntegrator: [0] deterministic steepest descent, [1] Langevin dynamics."""
    import openmm
    from openmm import unit
    from openmm.app import PME, ForceField

    forcefield = ForceField(forcefield_path("fixed_charge_baseline"))
    cutoff_nm = min(0.9, 0.49 * box_nm)
    system = forcefield.createSystem(topology, nonbondedMethod=PME, nonbondedCutoff=cutoff_nm * unit.nanometer,
                                     constraints=None, rigidWater=True, ewaldErrorTolerance=5e-4)
    langevin = openmm.LangevinMiddleIntegrator(temperature_k * unit.kelvin, 1.0 / unit.picosecond,
                                               timestep_fs * unit.femtosecond)
    langevin.setRandomNumberSeed(_derived_seed(seed, 1))
    integrator = openmm.CompoundIntegrator()
    integrator.addIntegrator(_steepest_descent_integrator())
    integrator.addIntegrator(langevin)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform,
                             {"Threads": str(threads), "DeterministicForces": "true"})
    return context, integrator


def _steepest_descent_integrator(initial_step_nm: float = 0.01):
    """Adaptive steepest descent as an OpenMM CustomIntegrator (one iteration per ``step``).

    ``x <- x + h f / |f|`` (h: length of the whole move in nm), positions re-constrained (rigid water);
    the move is kept and h grown by 1.2 if the energy went down, otherwise undone and h halved. Unlike
    ``openmm.LocalEnergyMinimizer`` (not deterministic; it may recompute forces in a multi-threaded CPU
    context) this gives the same result on every run.
    """
    import openmm

    sd = openmm.CustomIntegrator(0.0)
    sd.addGlobalVariable("h", initial_step_nm)
    sd.addGlobalVariable("e_old", 0.0)
    sd.addGlobalVariable("f_norm2", 0.0)
    sd.addGlobalVariable("accept", 0.0)
    sd.addPerDofVariable("x_old", 0.0)
    sd.addComputeGlobal("e_old", "energy")
    sd.addComputeSum("f_norm2", "f*f")
    sd.addComputePerDof("x_old", "x")
    sd.addComputePerDof("x", "x + h*f/sqrt(max(f_norm2, 1e-12))")
    sd.addConstrainPositions()
    sd.addComputeGlobal("accept", "step(e_old - energy)")
    sd.addComputePerDof("x", "accept*x + (1 - accept)*x_old")
    sd.addComputeGlobal("h", "accept*min(1.2*h, 0.02) + (1 - accept)*0.5*h")  # step <= 0.02 nm: rigid water stays solvable
    return sd


def minimise(context, integrator, iterations: int = 500) -> tuple[float, float]:
    """Run ``iterations`` of the deterministic steepest descent of :func:`_make_simulation`'s integrator.

    Returns
    -------
    tuple of float
        Potential energy before and after (kJ/mol).
    """
    from openmm import unit

    def energy() -> float:
        return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    context.applyConstraints(1e-6)
    before = energy()
    integrator.setCurrentIntegrator(0)
    integrator.step(iterations)
    integrator.setCurrentIntegrator(1)
    return before, energy()


def sample_ion_frames(ion: str, n_pairs: int, n_waters: int, n_frames: int, seed: int,
                      equilibration_ps: float = 20.0, interval_ps: float = 0.5, progress: bool = True,
                      *, threads: int = 1, temperature_k: float = 300.0, timestep_fs: float = 2.0,
                      density_g_cm3: float | None = None) -> list[Frame]:
    """Sample NVT frames of a salt solution with the fixed-charge baseline.

    Builds :func:`build_ion_box`, minimises (500 steps of deterministic steepest descent, see
    :func:`minimise`), equilibrates for ``equilibration_ps``
    and keeps one frame every ``interval_ps``: OpenMM CPU platform, PME (cutoff min(0.9 nm, 0.49 box)),
    rigid TIP3P, Joung–Cheatham ions, LangevinMiddleIntegrator (1/ps friction).

    Parameters
    ----------
    ion : {'NaCl', 'KCl', 'LiCl'}
        Salt.
    n_pairs, n_waters : int
        Composition.
    n_frames : int
        Number of frames to return (>= 1).
    seed : int
        Seeds the box, the initial velocities and the Langevin noise. With ``threads=1`` the same seed
        gives bit-identical frames on the same machine and OpenMM build (CPU platform with
        ``DeterministicForces``; the minimiser is deterministic too). With 2 threads the CPU PME sums are
        not reproducible and trajectories diverge after a few ps (statistically equivalent frames).
    equilibration_ps, interval_ps : float
        Equilibration time and time between stored frames (ps).
    progress : bool
        Print progress to stderr.
    threads : int
        CPU platform threads; 1 (the default) for reproducible frames.
    temperature_k, timestep_fs : float
        Thermostat temperature (K) and time step (fs).
    density_g_cm3 : float, optional
        Passed to :func:`build_ion_box`.

    Returns
    -------
    list of Frame
        Positions (Å, wrapped with whole molecules), cubic cell (Å), pbc True, total_charge 0; ``info``
        holds ion, n_pairs, n_waters, molality (mol/kg), seed, time_ps and sampler.
    """
    import openmm
    from openmm import unit

    _check_count("n_frames", n_frames, minimum=1)
    for name, value in (("equilibration_ps", equilibration_ps), ("interval_ps", interval_ps)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a finite time >= 0 ps (found {value})")
    step_ps = timestep_fs * 1e-3
    steps_between = max(1, int(round(interval_ps / step_ps)))
    topology, positions_nm, box_nm = build_ion_box(ion, n_pairs, n_waters, seed, density_g_cm3=density_g_cm3)
    context, integrator = _make_simulation(topology, box_nm, seed, threads, temperature_k, timestep_fs)
    context.setPositions(positions_nm * unit.nanometer)
    minimise(context, integrator)
    context.setVelocitiesToTemperature(temperature_k * unit.kelvin, _derived_seed(seed, 2))
    tag = f"[sample {ion} pairs={n_pairs} waters={n_waters} seed={seed}]"
    start = time.perf_counter()
    integrator.step(int(round(equilibration_ps / step_ps)))
    if progress:
        print(f"{tag} equilibrated {equilibration_ps:g} ps in {time.perf_counter() - start:.1f} s",
              file=sys.stderr, flush=True)
    symbols = [atom.element.symbol for atom in topology.atoms()]
    info = {"ion": ion, "n_pairs": int(n_pairs), "n_waters": int(n_waters),
            "molality": round(pairs_to_molality(n_pairs, n_waters), 4), "seed": int(seed),
            "sampler": f"OpenMM {openmm.__version__} TIP3P/JC-TIP3P NVT {temperature_k:g} K"}
    frames = []
    for k in range(n_frames):
        integrator.step(steps_between)
        state = context.getState(getPositions=True, enforcePeriodicBox=True)
        positions_a = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        time_ps = equilibration_ps + (k + 1) * steps_between * step_ps
        frames.append(Frame(symbols=symbols, positions=np.array(positions_a), cell=np.eye(3) * box_nm * 10.0,
                            pbc=np.ones(3, dtype=bool), total_charge=0.0,
                            info={**info, "time_ps": round(time_ps, 6)}).validate())
        if progress and ((k + 1) % 10 == 0 or k + 1 == n_frames):
            print(f"{tag} frame {k + 1}/{n_frames} t={time_ps:.1f} ps "
                  f"({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
    return frames


def sample_ion_dataset(path: str | os.PathLike, ion: str, n_pairs_list: Sequence[int], n_waters: int,
                       n_frames: int, seed: int, equilibration_ps: float = 20.0, interval_ps: float = 0.5,
                       progress: bool = True, *, threads: int = 1) -> int:
    """Sample :func:`sample_ion_frames` for each number of pairs and write all frames to one extxyz file.

    Every composition uses the same ``seed``. Returns the number of frames written.
    """
    from polarff.io import write_frames

    frames: list[Frame] = []
    for n_pairs in n_pairs_list:
        frames += sample_ion_frames(ion, int(n_pairs), n_waters, n_frames, seed, equilibration_ps,
                                    interval_ps, progress, threads=threads)
    write_frames(path, frames)
    return len(frames)


def _check_ion(ion: str) -> None:
    if ion not in ION_PAIRS:
        raise ConfigError(f"unknown ion pair '{ion}' (expected one of {sorted(ION_PAIRS)})")


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum} (found {value!r})")
