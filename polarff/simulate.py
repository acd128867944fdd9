"""Run OpenMM MD with a polarff model (or a fixed-charge baseline), with checkpoints and restart.

A run is described by a :class:`SimulationConfig` (a YAML file for ``polarff simulate``) and writes into
an output folder::

    run.json                 settings, atoms, species, timings (rewritten atomically)
    start.pdb                the starting structure (molecules made whole)
    equilibrated.npz         OpenMM checkpoint after minimisation + equilibration
    chunks/chunk_000000.npz  frames of one checkpoint interval + the checkpoint at its last step
    trajectory.dcd           unwrapped positions (OpenMM DCDFile), Å as the format wants
    trajectory.npz           all frames merged, when the run is complete (see :func:`load_trajectory`)

**Restart.** Each chunk file holds the frames of one checkpoint interval *and* the OpenMM checkpoint
taken at its last step, written in one atomic rename: after a crash the folder holds complete chunks
only, and the run resumes from the checkpoint of the last one, so no frame is lost or written twice.
Rerunning the same command resumes; raising ``length_ps`` extends a finished run. Checkpoints are
specific to the platform (and OpenMM version) that wrote them.

Units: nm, ps, fs (time step and intervals, as named), K, bar, e, kJ/mol.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polarff.openmm.loading import load_openmm, load_system_xml  # noqa: F401 (re-exported)
from polarff.data import Frame
from polarff.errors import ConfigError, InputError

ENSEMBLES = ("nvt", "npt", "nve")
#: Thermostats of the nvt and npt ensembles: LangevinMiddleIntegrator (friction on every atom) or
#: NoseHooverIntegrator (one global Nosé–Hoover chain, which leaves diffusion and conduction as in NVE;
#: docs/thermostat-friction.md).
THERMOSTATS = ("langevin", "nose-hoover")
#: Settings that may change when an existing run folder is resumed.
RESUMABLE_CHANGES = ("length_ps", "output", "threads")
CHUNK_DIR = "chunks"
RUN_RECORD = "run.json"
TRAJECTORY_NPZ = "trajectory.npz"
TRAJECTORY_DCD = "trajectory.dcd"
EQUILIBRATED = "equilibrated.npz"
START_PDB = "start.pdb"


@dataclass
class SimulationConfig:
    """Settings of one MD run (the keys of the YAML file of ``polarff simulate``).

    Exactly one of ``system``, ``model`` and ``forcefield`` chooses the Hamiltonian.

    Attributes
    ----------
    topology : str
        PDB file: topology (residues HOH, NA, CL, ...), starting positions and box (CRYST1).
    system : str, optional
        Exported OpenMM System XML (``polarff export``; TorchForce or PythonForce inside).
    model : str, optional
        Trained polarff model (``.pff``); the System is built with
        :func:`polarff.openmm.system.create_system`.
    forcefield : str, optional
        Classical force field: ``fixed_charge_baseline`` (TIP3P + Joung–Cheatham ions, formal charges)
        or the path of an OpenMM ForceField XML.
    fixed_terms : str, optional
        ForceField XML of the fixed (non-electrostatic) terms for ``model``: a file path or the name of
        a file in ``forcefields/`` (e.g. ``polarff_fixed_terms``); default: the file the model card names
        (:func:`polarff.openmm.system.model_fixed_terms`), else ``polarff_fixed_terms.xml``.
    charge_scale : float
        Factor applied to the charges of monatomic ions of a ``forcefield`` System (0.75: the
        electronic-continuum-corrected "scaled charge" baseline).
    implementation : {'torch', 'python'}
        polarff force implementation for ``model`` (TorchForce or PythonForce).
    cutoff_nm : float
        Nonbonded (LJ and real-space Ewald) cutoff for ``model`` and ``forcefield``, nm.
    electrostatics : dict
        Extra options of :class:`polarff.runtime.electrostatics.Electrostatics` (``model`` only).
    ensemble : {'nvt', 'npt', 'nve'}
        Thermostat, thermostat + MonteCarloBarostat, or velocity Verlet.
    thermostat : {'langevin', 'nose-hoover'}
        nvt/npt thermostat: LangevinMiddleIntegrator (``friction_per_ps`` on every atom) or NoseHooverIntegrator
        (a global chain, ``collision_frequency_per_ps``). A Langevin friction of 1/ps slows diffusion by ~10 %;
        use Nosé–Hoover to measure transport (docs/thermostat-friction.md).
    temperature_k : float
        Thermostat temperature and initial-velocity temperature, K.
    pressure_bar : float
        Barostat pressure (npt), bar.
    barostat_interval : int
        Steps between Monte Carlo volume moves (npt).
    friction_per_ps : float
        Langevin friction, 1/ps.
    collision_frequency_per_ps : float
        Coupling of the Nosé–Hoover chain to the heat bath, 1/ps.
    timestep_fs : float
        Integration time step, fs.
    length_ps : float
        Production length, ps (after equilibration).
    equilibration_ps : float
        Unreported equilibration before production, ps.
    minimize : bool
        Minimise the energy before equilibration.
    minimize_iterations : int
        Maximum minimiser iterations (0: until converged).
    report_interval_fs : float
        Time between frames (positions, charges, dipoles), fs; a multiple of the time step.
    energy_interval_fs : float
        Time between energy reports, fs; a multiple of the time step.
    checkpoint_interval_ps : float
        Time between checkpoints (one chunk file each), ps.
    platform : str
        OpenMM platform name (CPU, CUDA, OpenCL, Reference).
    threads : int
        CPU platform threads and torch threads.
    seed : int
        Seeds the initial velocities, the Langevin noise and the barostat.
    save_induced_dipoles : bool
        Keep per-atom induced dipoles in the frames (N×3 per frame) besides their sum.
    output : str
        Output folder (``polarff simulate -o`` overrides it).
    """

    topology: str
    system: str | None = None
    model: str | None = None
    forcefield: str | None = None
    fixed_terms: str | None = None
    charge_scale: float = 1.0
    implementation: str = "torch"
    cutoff_nm: float = 0.9
    electrostatics: dict = field(default_factory=dict)
    ensemble: str = "nvt"
    thermostat: str = "langevin"
    temperature_k: float = 298.15
    pressure_bar: float = 1.0
    barostat_interval: int = 25
    friction_per_ps: float = 1.0
    collision_frequency_per_ps: float = 1.0
    timestep_fs: float = 2.0
    length_ps: float = 10.0
    equilibration_ps: float = 0.0
    minimize: bool = True
    minimize_iterations: int = 500
    report_interval_fs: float = 10.0
    energy_interval_fs: float = 100.0
    checkpoint_interval_ps: float = 1.0
    platform: str = "CPU"
    threads: int = 1
    seed: int = 1
    save_induced_dipoles: bool = False
    output: str = "md-out"

    @classmethod
    def from_dict(cls, options: dict, source: str = "config", base_dir: str | None = None
                  ) -> "SimulationConfig":
        """Validated config from a mapping; relative paths are taken relative to ``base_dir``.

        Raises
        ------
        ConfigError
            Unknown key, wrong type or invalid value (the message names the file and the key).
        """
        if not isinstance(options, dict):
            raise ConfigError(f"{source}: expected a mapping of settings, found {type(options).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; known keys: {sorted(known)}")
        if "topology" not in options:
            raise ConfigError(f"{source}: 'topology' (a PDB file) is required")
        values = {}
        for name, value in options.items():
            values[name] = _coerce(name, value, known[name], source)
        for name in ("topology", "system", "model"):
            if values.get(name) and base_dir and not os.path.isabs(values[name]):
                values[name] = os.path.normpath(os.path.join(base_dir, values[name]))
        for name in ("forcefield", "fixed_terms"):
            ff = values.get(name)
            if ff and ff.endswith(".xml") and base_dir and not os.path.isabs(ff):
                candidate = os.path.join(base_dir, ff)
                if os.path.exists(candidate):
                    values[name] = os.path.normpath(candidate)
        config = cls(**values)
        config.validate(source)
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "SimulationConfig":
        """Read and validate a YAML config file."""
        from polarff.fileio import read_yaml_mapping

        path = os.fspath(path)
        options = read_yaml_mapping(path)
        return cls.from_dict(options, source=path, base_dir=os.path.dirname(os.path.abspath(path)))

    def validate(self, source: str = "config") -> None:
        """Check values and their consistency; ConfigError naming the key otherwise."""
        chosen = [k for k in ("system", "model", "forcefield") if getattr(self, k)]
        if len(chosen) != 1:
            raise ConfigError(f"{source}: give exactly one of 'system' (System XML), 'model' (.pff) or "
                              f"'forcefield' (classical baseline); found {chosen or 'none'}")
        if self.ensemble not in ENSEMBLES:
            raise ConfigError(f"{source}: ensemble must be one of {ENSEMBLES} (found {self.ensemble!r})")
        if self.thermostat not in THERMOSTATS:
            raise ConfigError(f"{source}: thermostat must be one of {THERMOSTATS} (found {self.thermostat!r})")
        if self.implementation not in ("torch", "python"):
            raise ConfigError(f"{source}: implementation must be 'torch' or 'python' "
                              f"(found {self.implementation!r})")
        for name in ("temperature_k", "timestep_fs", "cutoff_nm", "report_interval_fs",
                     "energy_interval_fs", "checkpoint_interval_ps", "pressure_bar", "collision_frequency_per_ps"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ConfigError(f"{source}: {name} must be a finite number > 0 (found {getattr(self, name)})")
        for name in ("length_ps", "equilibration_ps", "friction_per_ps", "charge_scale"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigError(f"{source}: {name} must be a finite number >= 0 (found {getattr(self, name)})")
        for name in ("threads", "barostat_interval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{source}: {name} must be >= 1 (found {getattr(self, name)})")
        if self.minimize_iterations < 0:
            raise ConfigError(f"{source}: minimize_iterations must be >= 0 (found {self.minimize_iterations})")
        for name in ("report_interval_fs", "energy_interval_fs"):
            _steps_of(getattr(self, name), self.timestep_fs, name, source)
        if self.charge_scale != 1.0 and not self.forcefield:
            raise ConfigError(f"{source}: charge_scale applies to a 'forcefield' baseline only")
        if self.fixed_terms and not self.model:
            raise ConfigError(f"{source}: fixed_terms applies to a 'model' System only")

    # derived step counts -------------------------------------------------------------------------
    @property
    def timestep_ps(self) -> float:
        return self.timestep_fs * 1e-3

    @property
    def n_steps(self) -> int:
        """Production steps."""
        return int(round(self.length_ps / self.timestep_ps))

    @property
    def equilibration_steps(self) -> int:
        return int(round(self.equilibration_ps / self.timestep_ps))

    @property
    def frame_interval(self) -> int:
        """Steps between frames."""
        return _steps_of(self.report_interval_fs, self.timestep_fs, "report_interval_fs")

    @property
    def energy_interval(self) -> int:
        """Steps between energy reports."""
        return _steps_of(self.energy_interval_fs, self.timestep_fs, "energy_interval_fs")

    @property
    def chunk_steps(self) -> int:
        """Steps per checkpoint chunk: the checkpoint interval rounded up to whole report intervals."""
        unit = math.lcm(self.frame_interval, self.energy_interval)
        wanted = self.checkpoint_interval_ps / self.timestep_ps
        return max(1, int(math.ceil(wanted / unit - 1e-9))) * unit

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any, spec: dataclasses.Field, source: str) -> Any:
    """Value converted to the field's type; ConfigError with the key if impossible."""
    kind = str(spec.type)
    try:
        if value is None:
            if "None" in kind:
                return None
            raise TypeError
        if kind.startswith("str"):
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError
            return os.fspath(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind == "int":
            if isinstance(value, bool) or float(value) != int(value):
                raise TypeError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind == "dict":
            if not isinstance(value, dict):
                raise TypeError
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: key '{name}' expects {kind}, found {value!r}") from None
    return value


def _steps_of(interval_fs: float, timestep_fs: float, name: str, source: str = "config") -> int:
    steps = interval_fs / timestep_fs
    if abs(steps - round(steps)) > 1e-6 * max(1.0, steps) or round(steps) < 1:
        raise ConfigError(f"{source}: {name} = {interval_fs} fs must be a whole multiple of timestep_fs = "
                          f"{timestep_fs} fs")
    return int(round(steps))


# ------------------------------------------------------------------------------------------------
# building the System


def fixed_charge_system(topology, forcefield: str = "fixed_charge_baseline", cutoff_nm: float = 0.9,
                        charge_scale: float = 1.0):
    """Classical System: ForceField XML with PME (periodic) and rigid water; ion charges scaled.

    Parameters
    ----------
    topology : openmm.app.Topology
        Residues named as in the force field.
    forcefield : str
        ``'fixed_charge_baseline'`` (shipped TIP3P + Joung–Cheatham XML) or a ForceField XML path.
    cutoff_nm : float
        Real-space cutoff, nm.
    charge_scale : float
        Factor applied to the charges of single-atom residues (ions); 1 keeps formal charges.

    Returns
    -------
    openmm.System
    """
    import openmm
    from openmm import app, unit

    from polarff.build import FORCEFIELD_NAMES, forcefield_path

    stem = forcefield[:-4] if forcefield.endswith(".xml") else forcefield
    path = forcefield_path(stem) if stem in FORCEFIELD_NAMES else forcefield
    if not os.path.exists(path):
        raise ConfigError(f"forcefield: {forcefield!r} is neither {list(FORCEFIELD_NAMES)} nor an existing XML file")
    periodic = topology.getPeriodicBoxVectors() is not None
    try:
        system = app.ForceField(path).createSystem(
            topology, nonbondedMethod=app.PME if periodic else app.NoCutoff,
            nonbondedCutoff=cutoff_nm * unit.nanometer, rigidWater=True, ewaldErrorTolerance=5e-4)
    except ValueError as exc:
        raise InputError(f"the force field does not match the topology: {exc}", file=path) from None
    if charge_scale != 1.0:
        ions = [r.atoms().__next__().index for r in topology.residues() if len(list(r.atoms())) == 1]
        for force in system.getForces():
            if isinstance(force, openmm.NonbondedForce):
                for i in ions:
                    q, sigma, epsilon = force.getParticleParameters(i)
                    force.setParticleParameters(i, q * charge_scale, sigma, epsilon)
    return system


def read_pdb(path: str):
    """(topology, positions nm (N, 3), box nm (3, 3) or None) of a PDB file; InputError if unreadable."""
    from openmm import app, unit

    if not os.path.exists(path):
        raise InputError("topology file not found", file=path, field="topology", expected="a PDB file")
    try:
        pdb = app.PDBFile(path)
    except Exception as exc:  # OpenMM raises plain exceptions on malformed files
        raise InputError(f"cannot read PDB file: {exc}", file=path, field="topology") from None
    positions = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)
    vectors = pdb.topology.getPeriodicBoxVectors()
    box = None if vectors is None else np.asarray(vectors.value_in_unit(unit.nanometer), dtype=np.float64)
    return pdb.topology, positions, box


def build_system(config: SimulationConfig, topology):
    """The System a config asks for (XML, polarff model, or classical baseline)."""
    if config.system:
        system = load_system_xml(config.system)
        if system.getNumParticles() != topology.getNumAtoms():
            raise InputError("System and topology differ in particle count", file=config.system,
                             field="system", expected=topology.getNumAtoms(), found=system.getNumParticles())
        return system
    if config.model:
        from polarff.build import forcefield_path
        from polarff.openmm.system import create_system

        files = None
        if config.fixed_terms:
            files = [config.fixed_terms if os.path.isfile(config.fixed_terms) else forcefield_path(config.fixed_terms)]
        return create_system(config.model, topology, implementation=config.implementation,
                             nonbonded_cutoff_nm=config.cutoff_nm, electrostatics=config.electrostatics or None,
                             forcefield_files=files)
    return fixed_charge_system(topology, config.forcefield, config.cutoff_nm, config.charge_scale)


def _derived_seed(seed: int, stream: int) -> int:
    """Positive 31-bit seed for OpenMM (which treats 0 as 'pick one at random')."""
    return int(np.random.default_rng([int(seed), stream]).integers(1, 2 ** 31 - 1))


def make_simulation(config: SimulationConfig, topology, system):
    """``openmm.app.Simulation`` with the integrator, barostat and platform of ``config``."""
    import openmm
    from openmm import app, unit

    temperature = config.temperature_k * unit.kelvin
    dt = config.timestep_fs * unit.femtosecond
    if config.ensemble == "nve":
        integrator = openmm.VerletIntegrator(dt)
    elif config.thermostat == "nose-hoover":
        integrator = openmm.NoseHooverIntegrator(temperature, config.collision_frequency_per_ps / unit.picosecond,
                                                 dt)
    else:
        integrator = openmm.LangevinMiddleIntegrator(temperature, config.friction_per_ps / unit.picosecond, dt)
        integrator.setRandomNumberSeed(_derived_seed(config.seed, 1))
    if config.ensemble == "npt":
        if not system.usesPeriodicBoundaryConditions():
            raise ConfigError("ensemble 'npt' needs a periodic system (CRYST1 box in the PDB)")
        barostat = openmm.MonteCarloBarostat(config.pressure_bar * unit.bar, temperature,
                                             config.barostat_interval)
        barostat.setRandomNumberSeed(_derived_seed(config.seed, 3))
        system.addForce(barostat)
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if config.platform not in names:
        raise ConfigError(f"platform: {config.platform!r} is not available here (available: {names})")
    platform = openmm.Platform.getPlatformByName(config.platform)
    properties = {"Threads": str(config.threads)} if config.platform == "CPU" else {}
    return app.Simulation(topology, system, integrator, platform, properties)


# ------------------------------------------------------------------------------------------------
# run folder bookkeeping


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    from polarff.reporters import publish

    publish(tmp, path)


def _chunk_path(out: Path, index: int) -> Path:
    return out / CHUNK_DIR / f"chunk_{index:06d}.npz"


def completed_chunks(out: str | os.PathLike, clean: bool = False) -> list[Path]:
    """Chunk files that form a contiguous run from step 0, in order.

    Parameters
    ----------
    out : path-like
        Run folder.
    clean : bool
        Delete temporary files and any chunk file after the first gap or unreadable file (left by a
        crash), so that a resumed run rewrites them.
    """
    out = Path(out)
    folder = out / CHUNK_DIR
    if not folder.is_dir():
        return []
    if clean:
        for tmp in list(folder.glob("*.tmp")) + list(out.glob("*.tmp")):
            tmp.unlink()
    files = sorted(folder.glob("chunk_*.npz"))
    good: list[Path] = []
    expected_start = 0
    for k, path in enumerate(files):
        ok = path.name == _chunk_path(out, k).name
        if ok:
            try:
                with np.load(path) as data:
                    ok = int(data["chunk_start_step"]) == expected_start
                    expected_start = int(data["chunk_end_step"])
            except Exception:
                ok = False
        if not ok:
            if clean:
                for stale in files[k:]:
                    stale.unlink()
            break
        good.append(path)
    return good


def _run_record(config: SimulationConfig, topology, system) -> dict:
    from openmm import unit

    from polarff.openmm.system import find_polarff_force

    atoms = list(topology.atoms())
    return {
        "config": config.to_dict(),
        "n_atoms": len(atoms),
        "symbols": [a.element.symbol if a.element is not None else a.name for a in atoms],
        "atom_names": [a.name for a in atoms],
        "residue_index": [a.residue.index for a in atoms],
        "residue_names": [a.residue.name for a in atoms],
        "masses_dalton": [system.getParticleMass(i).value_in_unit(unit.dalton)
                          for i in range(system.getNumParticles())],
        "polarff": find_polarff_force(system) is not None,
        "forces": [f.getName() for f in system.getForces()],
        "versions": _versions(),
        "units": {"positions": "nm", "time": "ps", "charges": "e", "dipoles": "e nm",
                  "polarizabilities": "nm^3", "energies": "kJ/mol", "temperature": "K", "volume": "nm^3"},
    }


def _versions() -> dict:
    import openmm

    import polarff

    out = {"openmm": openmm.__version__, "polarff": getattr(polarff, "__version__", "?"),
           "numpy": np.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:
        pass
    return out


def recorded_config(record: dict) -> dict:
    """The settings of a run record (``run.json``), a key the record lacks read as that key's default: it was
    added to :class:`SimulationConfig` after the run, which therefore used the default."""
    return {**SimulationConfig(topology="").to_dict(), **record.get("config", {})}


def check_resume(out: Path, config: SimulationConfig) -> dict | None:
    """Existing run record (None for a new folder); ConfigError if its settings differ."""
    path = out / RUN_RECORD
    if not path.exists():
        return None
    with open(path) as handle:
        record = json.load(handle)
    old = recorded_config(record)
    new = config.to_dict()
    changed = sorted(k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k])
    if changed:
        k = changed[0]
        raise ConfigError(f"{out}: holds a run with other settings ({k}: expected {old.get(k)!r} to resume, "
                          f"found {new[k]!r}; changed keys {changed}); use another output folder or "
                          "--overwrite to start over")
    return record


@dataclass
class RunSummary:
    """What :func:`run_simulation` did.

    Attributes
    ----------
    out_dir : str
        Run folder.
    complete : bool
        Whether the production run reached ``length_ps``.
    steps_done : int
        Production steps done in total (over all sessions).
    frames : int
        Frames saved in total.
    resumed_from_step : int
        Production step this session started from.
    ms_per_step : float
        Wall time per MD step of this session, reporting included (NaN if no step was taken).
    ms_per_step_reporting : float
        Part of it spent evaluating charges and dipoles for the frames.
    """

    out_dir: str
    complete: bool
    steps_done: int
    frames: int
    resumed_from_step: int
    ms_per_step: float
    ms_per_step_reporting: float


def run_simulation(config: SimulationConfig, out_dir: str | os.PathLike | None = None, *,
                   stop_after_chunks: int | None = None, progress: bool = True,
                   overwrite: bool = False) -> RunSummary:
    """Run (or resume, or extend) an MD run described by ``config``.

    Parameters
    ----------
    config : SimulationConfig
        Settings.
    out_dir : path-like, optional
        Run folder (default ``config.output``).
    stop_after_chunks : int, optional
        Stop after writing this many chunks in this session, as if the run had been interrupted
        (for testing restarts; rerun to resume).
    progress : bool
        Print progress with an ETA to stderr.
    overwrite : bool
        Delete an existing run in ``out_dir`` first instead of resuming it.

    Returns
    -------
    RunSummary
    """
    load_openmm()
    from polarff.progress import Progress
    from polarff.reporters import (ChargeEvaluator, TrajectoryRecorder, degrees_of_freedom,
                                   save_npz_atomic, write_dcd)

    out = Path(out_dir or config.output)
    if overwrite:
        _remove_run(out)
    out.mkdir(parents=True, exist_ok=True)
    record = check_resume(out, config)
    topology, positions, box = read_pdb(config.topology)
    system = build_system(config, topology)
    if box is not None:
        from polarff.reporters import make_molecules_whole

        positions = make_molecules_whole(positions, topology, box)
    simulation = make_simulation(config, topology, system)
    if record is None:
        record = _run_record(config, topology, system)
        _write_start_pdb(out / START_PDB, topology, positions)
    record["config"] = config.to_dict()
    _atomic_write_text(out / RUN_RECORD, json.dumps(record, indent=1))

    chunks = completed_chunks(out, clean=True)
    if chunks:
        with np.load(chunks[-1]) as data:
            simulation.context.loadCheckpoint(data["checkpoint"].tobytes())
        _rebuild_dcd(out, topology, config, chunks)
    else:
        _prepare_start(out, config, simulation, positions, box, progress)
        (out / TRAJECTORY_DCD).unlink(missing_ok=True)
    start_step = simulation.currentStep
    total = config.n_steps
    if start_step < total:  # resumed or extended: the merged file (if any) no longer holds every frame
        (out / TRAJECTORY_NPZ).unlink(missing_ok=True)
    evaluator = ChargeEvaluator(system, threads=config.threads)
    meter = Progress(total, "simulate", start_at=start_step) if progress else None

    def on_report(step: int) -> None:
        if meter is not None:
            meter.update(step, f"t = {step * config.timestep_ps:.2f} ps")

    recorder = TrajectoryRecorder(evaluator, config.frame_interval, config.energy_interval,
                                  degrees_of_freedom(system), config.save_induced_dipoles, on_report)
    recorder_seconds = _time_recorder(recorder)
    simulation.reporters.append(recorder)
    index, written, wall = len(chunks), 0, 0.0
    cpu_start = time.process_time()
    while simulation.currentStep < total:
        if stop_after_chunks is not None and written >= stop_after_chunks:
            break
        begin = simulation.currentStep
        end = min((begin // config.chunk_steps + 1) * config.chunk_steps, total)
        t0 = time.perf_counter()
        simulation.step(end - begin)
        wall += time.perf_counter() - t0
        data = recorder.pop(system.getNumParticles())
        data.update(chunk_start_step=np.int64(begin), chunk_end_step=np.int64(end),
                    wall_seconds=np.float64(time.perf_counter() - t0),
                    checkpoint=np.frombuffer(simulation.context.createCheckpoint(), dtype=np.uint8))
        save_npz_atomic(_chunk_path(out, index), data)
        if len(data["time"]):
            write_dcd(out / TRAJECTORY_DCD, topology, list(zip(data["positions"], data["box"])),
                      config.timestep_ps, int(data["frame_step"][0]), config.frame_interval, append=True)
        index += 1
        written += 1
    steps_run = simulation.currentStep - start_step
    complete = simulation.currentStep >= total
    summary = RunSummary(str(out), complete, simulation.currentStep, 0, start_step,
                         1e3 * wall / steps_run if steps_run else float("nan"),
                         1e3 * recorder_seconds[0] / steps_run if steps_run else float("nan"))
    if complete:
        merged = load_trajectory(out, prefer_merged=False)
        save_npz_atomic(out / TRAJECTORY_NPZ, merged)
        summary.frames = len(merged["time"])
    else:
        summary.frames = sum(len(np.load(p)["time"]) for p in completed_chunks(out))
    timings = record.setdefault("sessions", [])
    if steps_run:
        timings.append({"from_step": start_step, "to_step": simulation.currentStep,
                        "ms_per_step": summary.ms_per_step,
                        "ms_per_step_reporting": summary.ms_per_step_reporting,
                        "cpu_seconds": time.process_time() - cpu_start, "wall_seconds": wall,
                        "platform": config.platform, "threads": config.threads})
    record["complete"] = complete
    _atomic_write_text(out / RUN_RECORD, json.dumps(record, indent=1))
    if progress:
        state = "complete" if complete else "interrupted (rerun to resume)"
        print(f"[simulate] {out}: {summary.frames} frames, step {simulation.currentStep}/{total}, {state}; "
              f"{summary.ms_per_step:.1f} ms/step ({summary.ms_per_step_reporting:.1f} of it reporting)",
              file=sys.stderr, flush=True)
    return summary


def _time_recorder(recorder) -> list[float]:
    """Wrap ``recorder.report`` to accumulate its wall time (seconds) into the returned list."""
    spent = [0.0]
    inner = recorder.report

    def timed(simulation, state):
        t0 = time.perf_counter()
        inner(simulation, state)
        spent[0] += time.perf_counter() - t0

    recorder.report = timed
    return spent


def _remove_run(out: Path) -> None:
    for name in (RUN_RECORD, TRAJECTORY_NPZ, TRAJECTORY_DCD, EQUILIBRATED, START_PDB):
        (out / name).unlink(missing_ok=True)
    if (out / CHUNK_DIR).is_dir():
        for path in (out / CHUNK_DIR).iterdir():
            path.unlink()


def _write_start_pdb(path: Path, topology, positions: np.ndarray) -> None:
    from openmm import unit
    from openmm.app import PDBFile

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        PDBFile.writeFile(topology, positions * unit.nanometer, handle)
    from polarff.reporters import publish

    publish(tmp, path)


def _prepare_start(out: Path, config: SimulationConfig, simulation, positions: np.ndarray,
                   box: np.ndarray | None, progress: bool) -> None:
    """Minimise and equilibrate (or reload the saved equilibrated state); leaves step 0, time 0."""
    import openmm
    from openmm import Vec3, unit

    from polarff.reporters import save_npz_atomic

    context = simulation.context
    saved = out / EQUILIBRATED
    if saved.exists():
        with np.load(saved) as data:
            context.loadCheckpoint(data["checkpoint"].tobytes())
        return
    if box is not None:
        context.setPeriodicBoxVectors(*[Vec3(*row) for row in box])
    context.setPositions(positions * unit.nanometer)
    context.applyConstraints(1e-6)
    if config.minimize:
        t0 = time.perf_counter()
        openmm.LocalEnergyMinimizer.minimize(context, 10.0, config.minimize_iterations)
        if progress:
            energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            print(f"[simulate] minimised in {time.perf_counter() - t0:.1f} s: E = {energy:.1f} kJ/mol",
                  file=sys.stderr, flush=True)
    context.setVelocitiesToTemperature(config.temperature_k * unit.kelvin, _derived_seed(config.seed, 2))
    if config.equilibration_steps:
        t0 = time.perf_counter()
        simulation.step(config.equilibration_steps)
        if progress:
            print(f"[simulate] equilibrated {config.equilibration_ps:g} ps in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr, flush=True)
    context.setStepCount(0)
    context.setTime(0.0)
    save_npz_atomic(saved, {"checkpoint": np.frombuffer(context.createCheckpoint(), dtype=np.uint8)})


def _rebuild_dcd(out: Path, topology, config: SimulationConfig, chunks: list[Path]) -> None:
    """Rewrite the DCD from the chunk files (repairs an append torn by a crash)."""
    from polarff.reporters import write_dcd

    frames: list[tuple[np.ndarray, np.ndarray]] = []
    first_step = None
    for path in chunks:
        with np.load(path) as data:
            frames += list(zip(data["positions"], data["box"]))
            if first_step is None and len(data["frame_step"]):
                first_step = int(data["frame_step"][0])
    (out / TRAJECTORY_DCD).unlink(missing_ok=True)
    if frames:
        write_dcd(out / TRAJECTORY_DCD, topology, frames, config.timestep_ps, first_step or 0,
                  config.frame_interval)


def load_trajectory(out_dir: str | os.PathLike, prefer_merged: bool = True) -> dict[str, np.ndarray]:
    """All frames and energies of a run folder, with the atom metadata.

    Parameters
    ----------
    out_dir : path-like
        Run folder of :func:`run_simulation` (complete or not: unfinished runs are read from their
        chunk files).
    prefer_merged : bool
        Read ``trajectory.npz`` when present.

    Returns
    -------
    dict of str to ndarray
        Frame arrays (``time`` (T,) ps, ``positions`` (T, N, 3) nm unwrapped, ``box`` (T, 3, 3) nm,
        ``charges`` (T, N) e, ``polarizabilities`` (T, N) nm³, ``dipole``/``permanent_dipole``/
        ``induced_dipole`` (T, 3) e·nm, ...), energy arrays (``energy_time``, ``potential_energy``, ...),
        and ``symbols``, ``masses`` (dalton), ``residue_index``, ``residue_names``, ``timestep_ps``,
        ``temperature_k``.

    Raises
    ------
    InputError
        If the folder holds no run.
    """
    out = Path(out_dir)
    merged = out / TRAJECTORY_NPZ
    if prefer_merged and merged.exists():
        with np.load(merged) as data:
            return {k: data[k] for k in data.files}
    record_path = out / RUN_RECORD
    if not record_path.exists():
        raise InputError("no polarff run found (run.json missing)", file=str(out), field="run folder",
                         expected="the output folder of `polarff simulate`")
    with open(record_path) as handle:
        record = json.load(handle)
    parts: dict[str, list[np.ndarray]] = {}
    for path in completed_chunks(out):
        with np.load(path) as data:
            for key in data.files:
                if key in ("checkpoint", "chunk_start_step", "chunk_end_step", "wall_seconds"):
                    continue
                parts.setdefault(key, []).append(data[key])
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    cfg = record["config"]
    arrays.update(symbols=np.array(record["symbols"]), masses=np.array(record["masses_dalton"]),
                  residue_index=np.array(record["residue_index"]),
                  residue_names=np.array(record["residue_names"]),
                  timestep_ps=np.float64(cfg["timestep_fs"] * 1e-3),
                  temperature_k=np.float64(cfg["temperature_k"]))
    return arrays


def trajectory_frame(traj: dict, index: int) -> Frame:
    """Frame ``index`` of a :func:`load_trajectory` result as a periodic, neutral
    :class:`polarff.data.Frame` (positions in Å, unwrapped as stored; cell in Å)."""
    return Frame([str(s) for s in traj["symbols"]], np.asarray(traj["positions"][index], dtype=np.float64) * 10.0,
                 cell=np.asarray(traj["box"][index], dtype=np.float64) * 10.0, pbc=[True] * 3,
                 info={"index": int(index)})


def write_equilibrated_box(path: str | os.PathLike, ion: str, n_pairs: int, n_waters: int, seed: int, *,
                           equilibration_ps: float = 5.0, temperature_k: float = 298.15, threads: int = 1) -> float:
    """Build an ion box, equilibrate it with the fixed-charge baseline and write it as a PDB (whole molecules).

    :func:`polarff.build.build_ion_box` places molecules on a jittered lattice; minimising that with the
    polarff force costs hundreds of force evaluations. The classical baseline (TIP3P + Joung–Cheatham,
    PME, rigid water, LangevinMiddleIntegrator 1/ps, 2 fs) relaxes it to a liquid for ~1 ms per step,
    so the polarff run needs only a short minimisation and equilibration of its own.

    Parameters
    ----------
    path : path-like
        PDB to write (atomically; CRYST1 box).
    ion, n_pairs, n_waters, seed
        Passed to :func:`polarff.build.build_ion_box`; ``seed`` also seeds the velocities and noise.
    equilibration_ps : float
        Baseline NVT time, ps.
    temperature_k : float
        K.
    threads : int
        CPU platform threads.

    Returns
    -------
    float
        Cubic box edge, nm.
    """
    openmm = load_openmm()
    from openmm import Vec3, unit

    from polarff.build import build_ion_box
    from polarff.reporters import make_molecules_whole

    topology, positions, box_nm = build_ion_box(ion, n_pairs, n_waters, seed)
    box = np.eye(3) * box_nm
    positions = make_molecules_whole(positions, topology, box)
    system = fixed_charge_system(topology, "fixed_charge_baseline", min(0.9, 0.49 * box_nm))
    integrator = openmm.LangevinMiddleIntegrator(temperature_k * unit.kelvin, 1.0 / unit.picosecond,
                                                 2.0 * unit.femtosecond)
    integrator.setRandomNumberSeed(_derived_seed(seed, 11))
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"),
                             {"Threads": str(threads)})
    context.setPeriodicBoxVectors(*[Vec3(*row) for row in box])
    context.setPositions(positions * unit.nanometer)
    context.applyConstraints(1e-6)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 1000)
    context.setVelocitiesToTemperature(temperature_k * unit.kelvin, _derived_seed(seed, 12))
    integrator.step(int(round(equilibration_ps / 0.002)))
    state = context.getState(getPositions=True, enforcePeriodicBox=True)
    final = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    final = make_molecules_whole(final, topology, box)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_start_pdb(path, topology, final)
    return float(box_nm)


def demo_transport(model_path: str, out_dir: str, md_ps: float = 20.0, *, n_waters: int = 64,
                   n_pairs: int = 1, md_budget_s: float = 240.0, threads: int = 1,
                   seed: int = 11, equilibration_ps: float = 1.0, n_blocks: int = 4) -> dict:
    """``make demo`` stage 2: export a NaCl(aq) box, short NVT MD with the polarff force, transport.

    Stages (each skipped when its output exists, so an interrupted demo resumes): write the box
    (``md/box.pdb``) and the exported System (``md/system.xml``); time a few MD steps and choose the
    production length ``min(md_ps, md_budget_s / (s per step))``; run NVT MD (checkpointed; Nosé–Hoover
    1/ps like ``polarff benchmark``, since a Langevin friction of 1/ps slows D by ~10 %:
    docs/thermostat-friction.md); print D(H2O), D(Na⁺), D(Cl⁻) with the Yeh–Hummer correction and the
    Einstein–Helfand and Nernst–Einstein conductivities with block error bars beside the experimental values.

    Parameters
    ----------
    model_path : str
        Trained model (``.pff``) with species H, O, Na, Cl.
    out_dir : str
        Demo output folder (the MD goes into ``out_dir/md``).
    md_ps : float
        Longest production run, ps.
    n_waters, n_pairs : int
        Box composition (default 64 waters + 1 NaCl = 0.87 mol/kg, the size of the training boxes; the
        statistical error of D and σ per unit of CPU time is about the same as for 111 + 2).
    md_budget_s : float
        Wall-time budget of equilibration + production, s.
    threads : int
        CPU threads (1 by default: on a 2-core machine torch's second thread gains little for ~200
        atoms and costs a lot when the machine is shared).
    seed : int
        Seed of the box and of the MD.
    equilibration_ps : float
        Equilibration before production, ps.
    n_blocks : int
        Blocks for the error bars.

    Returns
    -------
    dict
        The transport summary (:func:`polarff.benchmark.transport_summary`).
    """
    from polarff.benchmark import format_transport, transport_summary

    load_openmm()
    md = Path(out_dir) / "md"
    md.mkdir(parents=True, exist_ok=True)
    pdb = md / "box.pdb"
    if not pdb.exists():
        write_equilibrated_box(pdb, "NaCl", n_pairs, n_waters, seed, threads=threads)
    topology, _, box = read_pdb(str(pdb))
    cutoff = round(min(0.9, 0.49 * float(box[0, 0])), 3)
    system_xml = md / "system.xml"
    if not system_xml.exists():
        from polarff.openmm.export import export_system

        print(f"[demo] stage 2: exporting the polarff System for {n_waters} H2O + {n_pairs} NaCl "
              f"(box {box[0, 0]:.3f} nm, cutoff {cutoff} nm)", flush=True)
        export_system(model_path, str(pdb), str(system_xml), "torch", cutoff)
    length_file = md / "length.json"
    if length_file.exists():
        length_ps = json.loads(length_file.read_text())["length_ps"]
    else:
        ms = time_md_step(str(system_xml), str(pdb), threads=threads)
        # reporting (charges + induced dipoles every 10 steps) adds ~5-10 %, the short minimisation
        # ~20 s; the equilibration comes out of the same budget
        affordable_ps = max(md_budget_s - 20.0, 0.0) / (1.1 * ms * 1e-3) * 2.0e-3 - equilibration_ps
        length_ps = float(min(md_ps, affordable_ps))
        length_ps = max(min(md_ps, 2.0), math.floor(length_ps * 2) / 2)
        _atomic_write_text(length_file, json.dumps({"length_ps": length_ps, "ms_per_step": ms}))
        print(f"[demo] MD costs {ms:.1f} ms/step here: production {length_ps:g} ps "
              f"(budget {md_budget_s:.0f} s, requested up to {md_ps:g} ps)", flush=True)
    config = SimulationConfig(topology=str(pdb), system=str(system_xml), ensemble="nvt", temperature_k=298.15,
                              thermostat="nose-hoover", collision_frequency_per_ps=1.0, timestep_fs=2.0,
                              length_ps=length_ps, equilibration_ps=equilibration_ps,
                              minimize=True, minimize_iterations=20, report_interval_fs=20.0,
                              energy_interval_fs=200.0, checkpoint_interval_ps=1.0, threads=threads, seed=seed,
                              output=str(md / "run"))
    run = md / "run"
    if not (run / TRAJECTORY_NPZ).exists():
        print(f"[demo] stage 3: NVT MD at 298.15 K (Nosé–Hoover 1/ps), {length_ps:g} ps (resumable)",
              flush=True)
        run_simulation(config, run)
    traj = load_trajectory(run)
    summary = transport_summary(traj, n_blocks=n_blocks)
    print(format_transport(summary, title=f"[demo] transport from a {length_ps:g} ps polarff run of "
                                          f"{n_waters} H2O + {n_pairs} NaCl (SHORT-RUN ESTIMATE)"), flush=True)
    _atomic_write_text(md / "transport.json", json.dumps(summary, indent=1, default=float))
    return summary


def time_md_step(system_xml: str, pdb: str, n_steps: int = 20, threads: int = 1) -> float:
    """Wall time of one MD step (ms) of a System on the CPU platform, after two warm-up steps.

    The structure should be relaxed already (e.g. :func:`write_equilibrated_box`): no minimisation.
    """
    openmm = load_openmm()
    from openmm import Vec3, unit

    from polarff.reporters import make_molecules_whole

    topology, positions, box = read_pdb(pdb)
    system = load_system_xml(system_xml)

    integrator = openmm.LangevinMiddleIntegrator(298.15 * unit.kelvin, 1 / unit.picosecond,
                                                 2 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"),
                             {"Threads": str(threads)})
    if box is not None:
        positions = make_molecules_whole(positions, topology, box)
        context.setPeriodicBoxVectors(*[Vec3(*row) for row in box])
    context.setPositions(positions * unit.nanometer)
    context.applyConstraints(1e-6)
    context.setVelocitiesToTemperature(298.15 * unit.kelvin, 1)
    integrator.step(2)
    t0 = time.perf_counter()
    integrator.step(n_steps)
    return 1e3 * (time.perf_counter() - t0) / n_steps
