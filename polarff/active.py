"""Active learning: sample candidates → score uncertainty → select → label → retrain → evaluate.

One *round* runs six steps, each writing its output atomically before it is marked done in
``state.json``, so a run interrupted at any point (Ctrl-C, a killed job, a wall-time budget) resumes from
the last finished step and neither repeats nor loses a round:

``sample``
    Candidate frames: MD with the current polarff model in OpenMM (``sampler='polarff'``; falls back to
    the classical sampler, with the reason recorded, if the polarff force cannot be built), classical
    TIP3P/Joung–Cheatham MD (``'classical'``, :func:`polarff.build.sample_ion_frames`), or the frames of a
    fixed pool not chosen yet (``'pool'``).
``score``
    Per-atom class entropy (nats, both heads, :func:`polarff.model.predict`), averaged over the committee,
    and, with ``committee > 1``, the per-atom standard deviation of the committee's charges; reduced per
    frame (mean of the top ``top_fraction`` atoms by default: a frame is uncertain if some atoms are).
``select``
    ``frames_per_round`` frames: greedy, most uncertain first, then the frame maximising
    normalised score + ``diversity`` × normalised distance to the frames already chosen (distance between
    per-species mean descriptors), so near-duplicates are not picked twice. ``strategy='random'`` picks
    uniformly at random instead (the baseline).
``label``
    Reference labels (default GFN2-xTB charges + D4 α, :func:`polarff.label.label_frame`; pool frames
    that already carry labels are used as they are), written frame by frame.
``train``
    Warm start of every committee member from its previous round (:func:`polarff.model.fit` with
    ``init_from``) on the initial frames plus all frames selected so far, ``retrain_epochs`` epochs.
``evaluate``
    Metrics on the fixed held-out set (member 0): charge MAE/RMSE overall and per species, α MAE, mean
    entropy; one row of ``metrics.csv`` and the plot ``metrics.png``.

Layout of a run folder::

    state.json  config.json  metrics.csv  metrics.png  initial.xyz  heldout.xyz
    round_000/model_0.pff …
    round_001/candidates.xyz  scores.json  selection.json  selected.xyz  model_0.pff …

Units: charges e, α Å³, entropy nats, times s.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from polarff.cli import Command, register
from polarff.data import Frame, dataset_hash
from polarff.fileio import atomic_path, to_json, write_json, write_text
from polarff.errors import ConfigError, InputError

SAMPLERS = ("classical", "polarff", "pool")
STRATEGIES = ("active", "random")
SCORE_REDUCTIONS = ("mean", "max", "top")
ROUND_STEPS = ("sample", "score", "select", "label", "train", "evaluate")
#: Config fields that may change when a run is resumed (they do not change finished rounds).
RESUMABLE_CHANGES = ("rounds", "wall_time_s")

Labeller = Callable[[Frame], Frame]


@dataclass
class ActiveConfig:
    """Settings of an active-learning run.

    Attributes
    ----------
    rounds : int
        Number of selection rounds (round 0 is the initial model).
    frames_per_round : int
        Labelling budget per round (frames).
    candidates_per_round : int or None
        Candidates sampled (MD) or drawn from the pool per round; None: the whole remaining pool.
    strategy : {'active', 'random'}
        Uncertainty + diversity selection, or uniform random (baseline).
    sampler : {'classical', 'polarff', 'pool'}
        Where candidates come from (see the module docstring).
    ion, n_pairs, n_waters :
        Composition of the MD boxes (samplers 'classical' and 'polarff').
    md_equilibration_ps, md_interval_ps, md_temperature_k : float
        MD equilibration (ps), time between candidate frames (ps), temperature (K).
    md_implementation : {'torch', 'python'}
        polarff force implementation for the 'polarff' sampler.
    committee : int
        Models trained with seeds ``seed + k``; > 1 adds committee disagreement to the score.
    entropy_weight, committee_weight : float
        Weights of the normalised entropy and of the normalised committee disagreement in the score
        (``entropy_weight=0`` with ``committee > 1``: pure query-by-committee).
    score_reduce : {'top', 'mean', 'max'}
        Per-frame reduction of per-atom uncertainties.
    top_fraction : float
        Fraction of atoms averaged by ``score_reduce='top'``.
    diversity : float
        Weight of the diversity term (0: pure uncertainty ranking).
    retrain_epochs : int
        Epochs of each warm-start retraining.
    retrain_learning_rate : float or None
        Initial learning rate of retraining (None: the FitConfig's).
    wall_time_s : float or None
        Budget of one invocation (s): no step starts after it is spent; rerun to continue.
    seed : int
        Seeds sampling, random selection and (as ``FitConfig.seed``) training.
    """

    rounds: int = 3
    frames_per_round: int = 5
    candidates_per_round: int | None = 20
    strategy: str = "active"
    sampler: str = "classical"
    ion: str = "NaCl"
    n_pairs: int = 3
    n_waters: int = 32
    md_equilibration_ps: float = 5.0
    md_interval_ps: float = 0.5
    md_temperature_k: float = 300.0
    md_implementation: str = "torch"
    committee: int = 1
    entropy_weight: float = 1.0
    committee_weight: float = 1.0
    score_reduce: str = "top"
    top_fraction: float = 0.1
    diversity: float = 1.0
    retrain_epochs: int = 60
    retrain_learning_rate: float | None = None
    wall_time_s: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "ActiveConfig":
        """Raise :class:`ConfigError` naming the first invalid option."""
        for name, allowed in (("strategy", STRATEGIES), ("sampler", SAMPLERS), ("score_reduce", SCORE_REDUCTIONS),
                              ("md_implementation", ("torch", "python"))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"active: {name}: expected one of {list(allowed)}, found {getattr(self, name)!r}")
        for name, minimum in (("rounds", 0), ("frames_per_round", 1), ("committee", 1), ("retrain_epochs", 1),
                              ("n_waters", 1), ("n_pairs", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ConfigError(f"active: {name}: expected an integer >= {minimum}, found {value!r}")
        if self.candidates_per_round is not None and self.candidates_per_round < self.frames_per_round:
            raise ConfigError(f"active: candidates_per_round ({self.candidates_per_round}) must be >= "
                              f"frames_per_round ({self.frames_per_round})")
        if not 0 < self.top_fraction <= 1:
            raise ConfigError(f"active: top_fraction: expected a fraction in (0, 1], found {self.top_fraction}")
        for name in ("diversity", "entropy_weight", "committee_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"active: {name}: expected >= 0, found {getattr(self, name)}")
        if self.entropy_weight == 0 and (self.committee == 1 or self.committee_weight == 0):
            raise ConfigError("active: entropy_weight 0 needs a committee (committee > 1, committee_weight > 0)")
        if self.wall_time_s is not None and not self.wall_time_s > 0:
            raise ConfigError(f"active: wall_time_s: expected a positive time (s) or None, found {self.wall_time_s}")
        return self

    @classmethod
    def from_dict(cls, d: dict, source: str = "active config") -> "ActiveConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"{source}: unknown option(s) {unknown}; expected some of "
                              f"{sorted(cls.__dataclass_fields__)}")
        return cls(**d)


# ------------------------------------------------------------------------------------- scoring
def reduce_per_frame(values: np.ndarray, frame_index: np.ndarray, n_frames: int, how: str = "top",
                     top_fraction: float = 0.1) -> np.ndarray:
    """Per-frame reduction of per-atom values: ``'mean'``, ``'max'`` or ``'top'`` (mean of the largest
    ``top_fraction`` of the frame's atoms, at least one)."""
    if how not in SCORE_REDUCTIONS:
        raise ConfigError(f"reduce: expected one of {list(SCORE_REDUCTIONS)}, found {how!r}")
    out = np.zeros(n_frames)
    for f in range(n_frames):
        v = np.sort(values[frame_index == f])[::-1]
        if len(v) == 0:
            continue
        if how == "mean":
            out[f] = v.mean()
        elif how == "max":
            out[f] = v[0]
        else:
            out[f] = v[:max(1, int(round(top_fraction * len(v))))].mean()
    return out


def frame_fingerprints(model, frames: Sequence[Frame]) -> np.ndarray:
    """Per-frame vectors for diversity: per-species means of normalised descriptors, concatenated.

    Returns
    -------
    ndarray, shape (F, n_species · n_features)
        Species absent from a frame contribute zeros.
    """
    from polarff.descriptors import describe_frames

    desc = describe_frames(model.descriptor, list(frames))
    z = (desc.features - model.network.feature_mean) / model.network.feature_std
    n_spec = model.descriptor.n_species
    out = np.zeros((len(frames), n_spec, z.shape[1]))
    for f in range(len(frames)):
        sel = desc.frame_index == f
        for s in range(n_spec):
            m = sel & (desc.species == s)
            if m.any():
                out[f, s] = z[m].mean(axis=0)
    return out.reshape(len(frames), -1)


def score_candidates(models: Sequence, frames: Sequence[Frame], cfg: ActiveConfig) -> dict[str, np.ndarray]:
    """Uncertainty of each candidate frame under a committee of models.

    Returns
    -------
    dict
        ``entropy`` (F,) per-frame reduced mean-committee entropy (nats); ``disagreement`` (F,) reduced
        per-atom std of the members' charges (e; zeros for one model); ``score`` (F,) = entropy / max +
        entropy_weight · entropy / max + committee_weight · disagreement / max; ``fingerprints`` (F, D).
    """
    from polarff.model import predict

    frames = [_strip_labels(f) for f in frames]
    preds = [predict(m, frames) for m in models]
    fid = preds[0]["frame_index"]
    n = len(frames)
    entropy_atoms = np.mean([p["entropy"] for p in preds], axis=0)
    entropy = reduce_per_frame(entropy_atoms, fid, n, cfg.score_reduce, cfg.top_fraction)
    if len(models) > 1:
        spread = np.std([p["charges"] for p in preds], axis=0)
        disagreement = reduce_per_frame(spread, fid, n, cfg.score_reduce, cfg.top_fraction)
    else:
        disagreement = np.zeros(n)
    score = cfg.entropy_weight * _unit_max(entropy) + cfg.committee_weight * _unit_max(disagreement)
    return {"entropy": entropy, "disagreement": disagreement, "score": score,
            "fingerprints": frame_fingerprints(models[0], frames)}


def _unit_max(x: np.ndarray) -> np.ndarray:
    top = float(np.max(np.abs(x))) if len(x) else 0.0
    return x / top if top > 0 else np.zeros_like(x)


def select_diverse(scores: np.ndarray, fingerprints: np.ndarray, n: int, diversity: float = 1.0) -> list[int]:
    """Greedy choice of ``n`` uncertain, mutually different frames.

    The first pick is the highest score; each next pick maximises
    ``s_j + diversity · d_j / max_k d_k`` over the frames not chosen, with ``s`` the scores rescaled to
    [0, 1] and ``d_j`` the distance from frame j's fingerprint to the nearest chosen one.

    Parameters
    ----------
    scores : ndarray (F,)
        Uncertainty per candidate (higher = more uncertain).
    fingerprints : ndarray (F, D)
        Feature vector per candidate (see :func:`frame_fingerprints`).
    n : int
        Number to choose (at most F).
    diversity : float
        Weight of the distance term; 0 ranks by score only.

    Returns
    -------
    list of int
        Chosen indices, in the order chosen.
    """
    scores = np.asarray(scores, dtype=float)
    fingerprints = np.asarray(fingerprints, dtype=float).reshape(len(scores), -1)
    n = min(int(n), len(scores))
    if n <= 0:
        return []
    span = scores.max() - scores.min()
    s = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
    chosen = [int(np.argmax(scores))]
    nearest = np.linalg.norm(fingerprints - fingerprints[chosen[0]], axis=1)
    while len(chosen) < n:
        free = np.ones(len(scores), dtype=bool)
        free[chosen] = False
        scale = nearest[free].max()
        objective = s + (diversity * nearest / scale if scale > 0 else 0.0)
        objective = np.where(free, objective, -np.inf)
        j = int(np.argmax(objective))
        chosen.append(j)
        nearest = np.minimum(nearest, np.linalg.norm(fingerprints - fingerprints[j], axis=1))
    return chosen


def select_random(n_candidates: int, n: int, seed: int) -> list[int]:
    """``n`` distinct indices of ``range(n_candidates)`` drawn uniformly with a seeded generator."""
    rng = np.random.default_rng(seed)
    return [int(i) for i in rng.choice(n_candidates, size=min(n, n_candidates), replace=False)]


def _strip_labels(frame: Frame) -> Frame:
    out = copy.copy(frame)
    out.labels, out.label_masks, out.info = {}, {}, dict(frame.info)
    return out


def _derived_seed(seed: int, round_index: int, stream: int) -> int:
    return int(np.random.default_rng([int(seed), int(round_index), int(stream)]).integers(1, 2 ** 31 - 1))


# ------------------------------------------------------------------------------------ samplers
def classical_candidates(cfg: ActiveConfig, n_frames: int, seed: int, progress: bool = False) -> list[Frame]:
    """Candidates from classical MD (TIP3P + Joung–Cheatham, :func:`polarff.build.sample_ion_frames`)."""
    from polarff.build import sample_ion_frames

    return sample_ion_frames(cfg.ion, cfg.n_pairs, cfg.n_waters, n_frames, seed,
                             equilibration_ps=cfg.md_equilibration_ps, interval_ps=cfg.md_interval_ps,
                             progress=progress, temperature_k=cfg.md_temperature_k)


def polarff_candidates(model, cfg: ActiveConfig, n_frames: int, seed: int, progress: bool = False) -> list[Frame]:
    """Candidates from OpenMM MD with the current polarff model (:func:`polarff.openmm.system.create_system`).

    Box from :func:`polarff.build.build_ion_box`; L-BFGS minimisation, Langevin (1/ps) at
    ``md_temperature_k`` with a 1 fs step on the CPU platform (1 thread), equilibration, then one frame
    every ``md_interval_ps``.
    """
    import openmm
    from openmm import unit

    from polarff.build import build_ion_box, pairs_to_molality
    from polarff.openmm.system import create_system

    topology, positions_nm, box_nm = build_ion_box(cfg.ion, cfg.n_pairs, cfg.n_waters, seed)
    cutoff = min(0.9, 0.49 * box_nm)
    system = create_system(model, topology, implementation=cfg.md_implementation, nonbonded_cutoff_nm=cutoff)
    step_ps = 0.001
    integrator = openmm.LangevinMiddleIntegrator(cfg.md_temperature_k * unit.kelvin, 1.0 / unit.picosecond,
                                                 step_ps * unit.picosecond)
    integrator.setRandomNumberSeed(_derived_seed(seed, 0, 1))
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(positions_nm * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 2000)
    context.setVelocitiesToTemperature(cfg.md_temperature_k * unit.kelvin, _derived_seed(seed, 0, 2))
    integrator.step(int(round(cfg.md_equilibration_ps / step_ps)))
    symbols = [a.element.symbol for a in topology.atoms()]
    every = max(1, int(round(cfg.md_interval_ps / step_ps)))
    frames = []
    for k in range(n_frames):
        integrator.step(every)
        state = context.getState(getPositions=True, enforcePeriodicBox=True)
        pos = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        if not np.all(np.isfinite(pos)):
            raise RuntimeError(f"polarff MD blew up after {cfg.md_equilibration_ps + k * cfg.md_interval_ps:g} ps")
        frames.append(Frame(symbols, np.array(pos), cell=np.eye(3) * box_nm * 10.0, pbc=[True] * 3, info={
            "ion": cfg.ion, "n_pairs": cfg.n_pairs, "n_waters": cfg.n_waters,
            "molality": round(pairs_to_molality(cfg.n_pairs, cfg.n_waters), 4), "seed": int(seed),
            "sampler": f"OpenMM {openmm.__version__} polarff ({cfg.md_implementation}) NVT",
            "time_ps": round(cfg.md_equilibration_ps + (k + 1) * every * step_ps, 6)}).validate())
        if progress:
            print(f"[active] polarff MD frame {k + 1}/{n_frames}", file=sys.stderr, flush=True)
    return frames


def reference_labeller(frame: Frame) -> Frame:
    """GFN2-xTB charges and D4 polarizabilities (:func:`polarff.label.label_frame`); frames that already
    carry both labels (a pre-labelled pool used as a label cache) are returned unchanged."""
    from polarff.label import label_frame

    if "charges" in frame.labels and "polarizabilities" in frame.labels:
        return copy.deepcopy(frame)
    return label_frame(frame, "gfn2", "d4")


# ------------------------------------------------------------------------------------ the loop
@dataclass
class ActiveResult:
    """Outcome of :func:`run_active`.

    Attributes
    ----------
    status : str
        ``'done'``, ``'interrupted'`` (``stop_after_steps``), ``'wall-time budget spent'`` or
        ``'pool exhausted'``.
    metrics : list of dict
        One row per finished round (round 0 = initial model).
    run_dir : Path
    steps_run : int
        Steps executed by this call.
    """

    status: str
    metrics: list[dict]
    run_dir: Path
    steps_run: int


class _Interrupted(Exception):
    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def _read_json(path: Path):
    with open(path) as handle:
        return json.load(handle)


class ActiveLoop:
    """The resumable loop behind :func:`run_active` (one instance per call)."""

    def __init__(self, run_dir, initial_frames, heldout_frames, fit_cfg, cfg: ActiveConfig, *, pool=None,
                 initial_models=None, labeller: Labeller | None = None, progress: bool = True):
        from polarff.artifact import load_model

        self.dir = Path(run_dir)
        self.cfg, self.fit_cfg = cfg.validate(), fit_cfg
        self.progress = progress
        self.labeller = labeller or reference_labeller
        self.initial = list(initial_frames)
        self.heldout = list(heldout_frames)
        self.pool = list(pool) if pool is not None else None
        if cfg.sampler == "pool" and not self.pool:
            raise ConfigError("active: sampler 'pool' needs pool frames (pool=... / --pool FILE)")
        if not self.initial:
            raise InputError("no initial training frames", field="initial", expected=">= 1 frame", found=0)
        if not self.heldout:
            raise InputError("no held-out frames", field="heldout", expected=">= 1 frame", found=0)
        if initial_models is not None:
            initial_models = [load_model(m) if isinstance(m, (str, os.PathLike)) else m for m in initial_models]
            if len(initial_models) != cfg.committee:
                raise ConfigError(f"active: {len(initial_models)} initial models given for a committee of "
                                  f"{cfg.committee}")
        self.initial_models = initial_models
        self.start = time.perf_counter()
        self.steps_run = 0
        self.stop_after_steps: int | None = None
        self.state = self._load_or_create_state()

    # ----------------------------------------------------------------- state
    def _fingerprint(self) -> dict:
        return {"initial_sha256": dataset_hash(self.initial), "heldout_sha256": dataset_hash(self.heldout),
                "pool_sha256": dataset_hash(self.pool) if self.pool else None}

    def _load_or_create_state(self) -> dict:
        from polarff.io import write_frames

        path = self.dir / "state.json"
        config = json.loads(to_json({"active": asdict(self.cfg), "fit": asdict(self.fit_cfg),
                                      "data": self._fingerprint()}))
        if path.exists():
            state = _read_json(path)
            old = state["config"]
            defaults = json.loads(to_json(asdict(ActiveConfig())))
            changed = sorted(k for k in set(old["active"]) | set(config["active"])
                             if k not in RESUMABLE_CHANGES
                             and old["active"].get(k, defaults.get(k)) != config["active"].get(k, defaults.get(k)))
            if changed or old["fit"] != config["fit"] or old["data"] != config["data"]:
                what = changed or ["fit config" if old["fit"] != config["fit"] else "input data"]
                raise ConfigError(f"{path}: the run was started with different settings ({', '.join(map(str, what))}); "
                                  "use the same options and data to resume, or a new run folder")
            state["config"]["active"] = config["active"]
            return state
        self.dir.mkdir(parents=True, exist_ok=True)
        write_frames(self.dir / "initial.xyz", self.initial)
        write_frames(self.dir / "heldout.xyz", self.heldout)
        state = {"format": 1, "config": config, "completed": [], "metrics": [], "pool_used": [],
                 "sampler_used": {}, "seconds": 0.0}
        write_json(self.dir / "config.json", config)
        write_json(path, state)
        return state

    def _save_state(self) -> None:
        write_json(self.dir / "state.json", self.state)

    def _round_dir(self, r: int) -> Path:
        return self.dir / f"round_{r:03d}"

    def _log(self, msg: str) -> None:
        if self.progress:
            print(f"[active] {msg}", file=sys.stderr, flush=True)

    # ----------------------------------------------------------------- driver
    def run(self, stop_after_steps: int | None = None) -> ActiveResult:
        self.stop_after_steps = stop_after_steps
        status = "done"
        try:
            for r in range(self.cfg.rounds + 1):
                steps = ("train", "evaluate") if r == 0 else ROUND_STEPS
                for step in steps:
                    self._step(r, step)
        except _Interrupted as stop:
            status = stop.status
        except KeyboardInterrupt:
            self._log("interrupted; finished steps are kept, rerun the same command to resume")
            raise
        return ActiveResult(status, list(self.state["metrics"]), self.dir, self.steps_run)

    def _step(self, r: int, step: str) -> None:
        key = f"{r}:{step}"
        if key in self.state["completed"]:
            return
        if self.stop_after_steps is not None and self.steps_run >= self.stop_after_steps:
            raise _Interrupted("interrupted")
        if self.cfg.wall_time_s is not None and time.perf_counter() - self.start > self.cfg.wall_time_s:
            self._log(f"wall-time budget of {self.cfg.wall_time_s:g} s spent before round {r} {step}; "
                      "rerun to continue")
            raise _Interrupted("wall-time budget spent")
        t0 = time.perf_counter()
        self._log(f"round {r}: {step}")
        getattr(self, f"_do_{step}")(r)
        elapsed = time.perf_counter() - t0
        self.state["completed"].append(key)
        self.state["seconds"] += elapsed
        self.state.setdefault("step_seconds", {})[key] = elapsed
        self._save_state()
        self.steps_run += 1

    # ----------------------------------------------------------------- steps
    def _models(self, r: int) -> list:
        from polarff.artifact import load_model

        return [load_model(self._round_dir(r) / f"model_{k}.pff") for k in range(self.cfg.committee)]

    def _do_sample(self, r: int) -> None:
        from polarff.io import write_frames

        cfg = self.cfg
        n = cfg.candidates_per_round
        seed = _derived_seed(cfg.seed, r, 10)
        if cfg.sampler == "pool":
            used = set(self.state["pool_used"])
            free = [i for i in range(len(self.pool)) if i not in used]
            if not free:
                raise _Interrupted("pool exhausted")
            if n is not None and n < len(free):
                free = sorted(free[i] for i in select_random(len(free), n, seed))
            frames = []
            for i in free:
                f = _strip_labels(self.pool[i])
                f.info["pool_index"] = int(i)
                frames.append(f)
            used_sampler = "pool"
        else:
            n = n or cfg.frames_per_round
            frames, used_sampler = None, cfg.sampler
            if cfg.sampler == "polarff":
                try:
                    frames = polarff_candidates(self._models(r - 1)[0], cfg, n, seed, self.progress)
                except Exception as exc:  # scripting / plugin / unstable-MD failures: fall back, say why
                    used_sampler = f"classical (polarff MD failed: {type(exc).__name__}: {str(exc)[:200]})"
                    self._log(f"round {r}: {used_sampler}")
            if frames is None:
                frames = classical_candidates(cfg, n, seed, self.progress)
        for k, f in enumerate(frames):
            f.info["candidate_index"] = k
        write_frames(self._round_dir(r) / "candidates.xyz", frames)
        self.state["sampler_used"][str(r)] = used_sampler

    def _candidates(self, r: int) -> list[Frame]:
        from polarff.io import read_frames

        return read_frames(self._round_dir(r) / "candidates.xyz")

    def _do_score(self, r: int) -> None:
        candidates = self._candidates(r)
        scores = score_candidates(self._models(r - 1), candidates, self.cfg)
        write_json(self._round_dir(r) / "scores.json", scores)

    def _do_select(self, r: int) -> None:
        scores = _read_json(self._round_dir(r) / "scores.json")
        n = self.cfg.frames_per_round
        if self.cfg.strategy == "random":
            chosen = select_random(len(scores["score"]), n, _derived_seed(self.cfg.seed, r, 20))
        else:
            chosen = select_diverse(np.array(scores["score"]), np.array(scores["fingerprints"]), n,
                                    self.cfg.diversity)
        candidates = self._candidates(r)
        pool_index = [int(candidates[i].info["pool_index"]) for i in chosen if "pool_index" in candidates[i].info]
        write_json(self._round_dir(r) / "selection.json", {"chosen": chosen, "pool_index": pool_index,
                                                              "strategy": self.cfg.strategy})
        self.state["pool_used"] = sorted(set(self.state["pool_used"]) | set(pool_index))

    def _do_label(self, r: int) -> None:
        from polarff.io import read_frames, write_frames

        selection = _read_json(self._round_dir(r) / "selection.json")
        candidates = self._candidates(r)
        path = self._round_dir(r) / "selected.xyz"
        done = read_frames(path) if path.exists() else []
        for k, i in enumerate(selection["chosen"]):
            if k < len(done):
                continue  # labelled before an interruption
            frame = candidates[i]
            if "pool_index" in frame.info:
                frame = copy.deepcopy(self.pool[int(frame.info["pool_index"])])
                frame.info["pool_index"] = int(candidates[i].info["pool_index"])
            labelled = self.labeller(frame)
            labelled.info.update({"active_round": r, "candidate_index": int(i)})
            labelled.info.pop("source", None)
            labelled.info.pop("index", None)
            done.append(labelled)
            write_frames(path, done)

    def training_frames(self, r: int) -> list[Frame]:
        """Initial frames plus the frames selected and labelled in rounds 1…r."""
        from polarff.io import read_frames

        frames = list(self.initial)
        for q in range(1, r + 1):
            frames += read_frames(self._round_dir(q) / "selected.xyz")
        return frames

    def _do_train(self, r: int) -> None:
        from polarff.model import fit

        out = self._round_dir(r)
        out.mkdir(parents=True, exist_ok=True)
        if r == 0 and self.initial_models is not None:
            for k, m in enumerate(self.initial_models):
                m.save(out / f"model_{k}.pff")
            return
        frames = self.training_frames(r)
        split = (np.arange(len(frames)), np.zeros(0, dtype=int), np.zeros(0, dtype=int))
        previous = self._models(r - 1) if r > 0 else [None] * self.cfg.committee
        for k in range(self.cfg.committee):
            changes = {"seed": self.fit_cfg.seed + k}
            if r > 0:
                changes["epochs"] = self.cfg.retrain_epochs
                if self.cfg.retrain_learning_rate is not None:
                    changes["learning_rate"] = self.cfg.retrain_learning_rate
            cfg_k = dataclasses.replace(self.fit_cfg, **changes)
            fit(frames, cfg_k, out_path=out / f"model_{k}.pff", progress=self.progress, split=split,
                init_from=previous[k])

    def _do_evaluate(self, r: int) -> None:
        from polarff.model import predict, prepare, summarize

        model = self._models(r)[0]
        pred = predict(model, self.heldout)
        m = summarize(model, prepare(model, self.heldout), pred)
        row = {"round": r, "strategy": self.cfg.strategy, "sampler": self.state["sampler_used"].get(str(r), "-"),
               "n_train_frames": len(self.training_frames(r))}
        row["n_labelled"] = sum(len(_read_json(self._round_dir(q) / "selection.json")["chosen"])
                                for q in range(1, r + 1))
        row["heldout_charge_mae"] = m.get("charge_mae", float("nan"))
        row["heldout_charge_rmse"] = m.get("charge_rmse", float("nan"))
        for sp, v in m.get("charge_per_species", {}).items():
            row[f"heldout_charge_mae_{sp}"] = v["mae"]
        row["heldout_polarizability_mae"] = m.get("polarizability_mae", float("nan"))
        row["heldout_mean_entropy"] = m["mean_entropy"]
        if r > 0:
            row.update(selection_statistics(self._round_dir(r)))
        keys = [f"{r}:{s}" for s in (("train", "evaluate") if r == 0 else ROUND_STEPS)]
        row["round_seconds"] = float(sum(self.state.get("step_seconds", {}).get(k, 0.0) for k in keys[:-1]))
        self.state["metrics"] = [x for x in self.state["metrics"] if x["round"] != r] + [row]
        write_metrics_csv(self.dir / "metrics.csv", self.state["metrics"])
        plot_metrics(self.state["metrics"], self.dir / "metrics.png")
        self._log(f"round {r}: held-out charge MAE {row['heldout_charge_mae']:.4f} e, "
                  f"mean entropy {row['heldout_mean_entropy']:.3f} nats ({row['n_labelled']} frames labelled)")


def selection_statistics(round_dir: str | os.PathLike) -> dict[str, float]:
    """Mean frame scores of a round's candidates and of its selected frames: entropy (nats) and, with
    a committee, charge disagreement (e)."""
    scores = _read_json(Path(round_dir) / "scores.json")
    chosen = _read_json(Path(round_dir) / "selection.json")["chosen"]
    out = {}
    for key in ("entropy", "disagreement"):
        values = np.asarray(scores[key], dtype=float)
        if key == "disagreement" and not np.any(values):
            continue
        out[f"candidates_mean_{key}"] = float(values.mean())
        out[f"selected_mean_{key}"] = float(values[chosen].mean())
    return out


def run_active(run_dir: str | os.PathLike, initial_frames: Sequence[Frame], heldout_frames: Sequence[Frame],
               fit_cfg, cfg: ActiveConfig, *, pool: Sequence[Frame] | None = None,
               initial_models: Sequence | None = None, labeller: Labeller | None = None,
               stop_after_steps: int | None = None, progress: bool = True) -> ActiveResult:
    """Run (or resume) an active-learning loop in ``run_dir``.

    Parameters
    ----------
    run_dir : path-like
        Folder of the run; rerunning with the same arguments resumes after the last finished step.
    initial_frames : sequence of Frame
        Labelled frames of the initial training set.
    heldout_frames : sequence of Frame
        Labelled, fixed evaluation frames (never trained on).
    fit_cfg : polarff.model.FitConfig
        Training settings of round 0 (and of every retraining, with ``epochs = cfg.retrain_epochs``).
    cfg : ActiveConfig
        Loop settings.
    pool : sequence of Frame, optional
        Candidate pool for ``sampler='pool'`` (labels, if present, are used only after selection).
    initial_models : sequence of PolarffModel or paths, optional
        Round-0 committee (else trained on ``initial_frames``).
    labeller : callable, optional
        Frame → labelled Frame (default :func:`reference_labeller`).
    stop_after_steps : int, optional
        Return after this many steps (simulates an interruption; for tests).
    progress : bool
        Log each step to stderr.

    Returns
    -------
    ActiveResult
    """
    loop = ActiveLoop(run_dir, initial_frames, heldout_frames, fit_cfg, cfg, pool=pool,
                      initial_models=initial_models, labeller=labeller, progress=progress)
    return loop.run(stop_after_steps)


# ------------------------------------------------------------------------------------- outputs
def write_metrics_csv(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Write metric rows (dicts) as CSV, atomically; columns = union of keys in first-seen order."""
    path = Path(path)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in sorted(rows, key=lambda x: x["round"]):
            writer.writerow(row)


def plot_metrics(rows: Sequence[dict], path: str | os.PathLike) -> None:
    """Held-out charge error and uncertainty per round (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda x: x["round"])
    rounds = [x["round"] for x in rows]
    committee = [x for x in rows if "selected_mean_disagreement" in x]
    fig, axes = plt.subplots(1, 3 if committee else 2, figsize=(13 if committee else 9, 3.5))
    ax1, ax2 = axes[0], axes[1]
    ax1.plot(rounds, [x["heldout_charge_mae"] for x in rows], "o-", label="all atoms")
    for sp in ("Na", "Cl"):
        if all(f"heldout_charge_mae_{sp}" in x for x in rows):
            ax1.plot(rounds, [x[f"heldout_charge_mae_{sp}"] for x in rows], "s--", label=sp)
    ax1.set(xlabel="round", ylabel="held-out charge MAE (e)", title="error")
    ax1.legend()
    ax2.plot(rounds, [x["heldout_mean_entropy"] for x in rows], "o-", label="held-out, mean per atom")
    sel = [x for x in rows if "selected_mean_entropy" in x]
    if sel:
        ax2.plot([x["round"] for x in sel], [x["selected_mean_entropy"] for x in sel], "^--",
                 label="selected frames (frame score)")
        ax2.plot([x["round"] for x in sel], [x["candidates_mean_entropy"] for x in sel], "v:",
                 label="candidates (frame score)")
    ax2.set(xlabel="round", ylabel="entropy (nats)", title="uncertainty: class entropy")
    ax2.legend(fontsize=8)
    if committee:
        ax3 = axes[2]
        ax3.plot([x["round"] for x in committee], [x["selected_mean_disagreement"] for x in committee], "^--",
                 label="selected frames")
        ax3.plot([x["round"] for x in committee], [x["candidates_mean_disagreement"] for x in committee], "v:",
                 label="candidates")
        ax3.set(xlabel="round", ylabel="charge spread (e)", title="uncertainty: committee disagreement")
        ax3.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, Path(path))
    plt.close(fig)


def _save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


# ---------------------------------------------------------------------------- active vs random
#: Held-out metrics compared between strategies: ``metrics.csv`` column → short name in comparison rows.
COMPARED_METRICS = {"heldout_charge_mae": "mae", "heldout_charge_mae_Na": "mae_Na",
                    "heldout_charge_mae_Cl": "mae_Cl"}


@dataclass
class ComparisonResult:
    """Outcome of :func:`compare_strategies`.

    Attributes
    ----------
    rows : list of dict
        One per round: mean and standard deviation over seeds of every strategy's metrics, and the paired
        difference of every active variant to random (see :func:`paired_difference`).
    markdown : str
        Tables of ``rows`` and ``summary`` (see :func:`comparison_markdown`).
    csv_path, plot_path : Path
        ``comparison.csv`` and ``active_vs_random.png``.
    complete : bool
        Every run finished all its rounds.
    per_seed : list of dict
        Every (round, seed, strategy) value (also in ``comparison_seeds.csv``).
    summary : dict or None
        Like a row, for the per-seed mean over rounds 1…R (the learning curve's mean); None without rounds.
    """

    rows: list[dict]
    markdown: str
    csv_path: Path
    plot_path: Path
    complete: bool
    per_seed: list[dict] = dataclasses.field(default_factory=list)
    summary: dict | None = None


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> dict[str, float]:
    """Paired comparison over seeds of a strategy with a baseline: ``d_s = values_s − baseline_s``.

    Returns
    -------
    dict
        ``mean`` (mean of d), ``se`` (standard error: std with ddof 1 / √n; nan for n < 2), ``t`` (mean / se),
        ``p`` (two-sided paired t-test, n − 1 degrees of freedom; nan when se is 0 or n < 2), ``n`` and
        ``lower`` (seeds with d < 0, i.e. where the strategy had the smaller error).
    """
    from scipy.stats import t as student_t

    d = np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    t = p = float("nan")
    if n > 1 and se > 0:
        t = mean / se
        p = float(2 * student_t.sf(abs(t), n - 1))
    return {"mean": mean, "se": se, "t": t, "p": p, "n": n, "lower": int(np.sum(d < 0))}


def compare_strategies(initial: Sequence[Frame], pool: Sequence[Frame], heldout: Sequence[Frame],
                       out_dir: str | os.PathLike, fit_cfg, *, rounds: int = 3, per_round: int = 5,
                       seeds: Sequence[int] = (0,), retrain_epochs: int = 60,
                       variants: dict[str, dict] | None = None, labeller: Labeller | None = None,
                       initial_dir: str | os.PathLike | None = None, report_dir: str | os.PathLike | None = None,
                       progress: bool = True) -> ComparisonResult:
    """Active selection versus random selection from the same pool, same budget, same seeds; resumable.

    For each seed: round-0 model(s) trained on ``initial`` (member k with seed ``fit_cfg.seed + seed +
    k``), then :func:`run_active` with ``sampler='pool'`` for ``'random'`` and for every active variant,
    all starting from the same member-0 model and retrained the same way; held-out charge error of member
    0 per round. Strategies are compared seed by seed (:func:`paired_difference`).

    Parameters
    ----------
    variants : dict of str to dict, optional
        Active variants by name, each a dict of :class:`ActiveConfig` overrides (e.g.
        ``{"committee": {"committee": 3, "entropy_weight": 0.0}}``); default ``{"active": {}}`` (entropy
        + diversity, one model). The random baseline always uses one model.
    initial_dir : path-like, optional
        Folder holding (or receiving) the round-0 models ``seed<S>_initial/model_<k>.pff``; default
        ``out_dir``. Lets comparisons on several pools share the same starting models (they must have been
        trained on the same ``initial`` frames with the same ``fit_cfg``).
    report_dir : path-like, optional
        Where the tables and the plot go (default ``out_dir``): comparisons over different sets of seeds
        whose runs share ``out_dir`` keep their own reports.

    Returns
    -------
    ComparisonResult
        Written to ``comparison.csv`` (per round), ``comparison_seeds.csv`` (per round, seed and
        strategy), ``comparison_summary.json``, ``comparison.md`` and ``active_vs_random.png``.
    """
    from polarff.artifact import load_model
    from polarff.model import fit

    variants = dict(variants or {"active": {}})
    if "random" in variants:
        raise ConfigError("compare_strategies: 'random' is the baseline; name the active variants otherwise")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start_dir = Path(initial_dir) if initial_dir is not None else out
    runs: dict[str, list[list[dict]]] = {name: [] for name in [*variants, "random"]}
    complete = True
    n = len(initial)
    split = (np.arange(n), np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    for seed in seeds:
        cfg_seed = dataclasses.replace(fit_cfg, seed=fit_cfg.seed + int(seed))
        committee = max([int(v.get("committee", 1)) for v in variants.values()] + [1])
        base = []
        for k in range(committee):
            path = start_dir / f"seed{seed}_initial" / f"model_{k}.pff"
            if not path.exists():
                fit(initial, dataclasses.replace(cfg_seed, seed=cfg_seed.seed + k), out_path=path,
                    progress=progress, split=split)
            base.append(load_model(path))
        for name, options in [*variants.items(), ("random", {"strategy": "random"})]:
            settings = dict(rounds=rounds, frames_per_round=per_round, candidates_per_round=None, sampler="pool",
                            retrain_epochs=retrain_epochs, seed=int(seed))
            settings.update(options)
            cfg = ActiveConfig(**settings)
            result = run_active(out / f"seed{seed}_{name}", initial, heldout, cfg_seed, cfg, pool=pool,
                                initial_models=base[:cfg.committee], labeller=labeller, progress=progress)
            complete &= result.status == "done"
            runs[name].append(sorted(result.metrics, key=lambda x: x["round"]))
    rows = _comparison_rows(runs)
    summary = _curve_summary(runs, len(rows))
    per_seed = _per_seed_rows(runs, seeds, len(rows))
    report = Path(report_dir) if report_dir is not None else out
    report.mkdir(parents=True, exist_ok=True)
    csv_path, plot_path = report / "comparison.csv", report / "active_vs_random.png"
    write_metrics_csv(csv_path, rows)
    write_metrics_csv(report / "comparison_seeds.csv", per_seed)
    write_json(report / "comparison_summary.json", summary)
    names = list(runs)
    plot_comparison(rows, plot_path, len(seeds), names)
    markdown = comparison_markdown(rows, len(seeds), names, summary)
    write_text(report / "comparison.md", markdown + "\n")
    return ComparisonResult(rows, markdown, csv_path, plot_path, complete, per_seed, summary)


def _statistics(per_name: dict[str, list[float]], short: str) -> dict[str, float]:
    """Mean and std (ddof 1) over seeds of each strategy, paired difference of each variant to random."""
    row = {}
    for name, values in per_name.items():
        v = np.asarray(values, dtype=float)
        row[f"{name}_{short}"] = float(v.mean())
        row[f"{name}_{short}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
    for name in per_name:
        if name != "random":
            d = paired_difference(per_name[name], per_name["random"])
            for key in ("mean", "se", "p", "lower"):
                row[f"{name}_minus_random_{short}" + ("" if key == "mean" else f"_{key}")] = d[key]
    return row


def _comparison_rows(runs: dict[str, list[list[dict]]]) -> list[dict]:
    n_rounds = min(len(r) for runs_s in runs.values() for r in runs_s)
    rows = []
    for k in range(n_rounds):
        row = {"round": k, "n_labelled": runs["random"][0][k]["n_labelled"]}
        for key, short in COMPARED_METRICS.items():
            if all(key in r[k] for per_seed in runs.values() for r in per_seed):
                row.update(_statistics({name: [r[k][key] for r in per_seed] for name, per_seed in runs.items()},
                                       short))
        rows.append(row)
    return rows


def _curve_summary(runs: dict[str, list[list[dict]]], n_rounds: int) -> dict | None:
    """Statistics of the per-seed mean over rounds 1…R (how fast the error falls, not only where it ends)."""
    if n_rounds < 2:
        return None
    labelled = [runs["random"][0][k]["n_labelled"] for k in (1, n_rounds - 1)]
    row: dict = {"round": f"1–{n_rounds - 1}", "n_labelled": f"{labelled[0]}–{labelled[1]} (mean)"}
    for key, short in COMPARED_METRICS.items():
        if all(key in r[k] for per_seed in runs.values() for r in per_seed for k in range(1, n_rounds)):
            row.update(_statistics({name: [float(np.mean([r[k][key] for k in range(1, n_rounds)]))
                                           for r in per_seed] for name, per_seed in runs.items()}, short))
    return row


def _per_seed_rows(runs: dict[str, list[list[dict]]], seeds: Sequence[int], n_rounds: int) -> list[dict]:
    out = []
    for name, per_seed in runs.items():
        for seed, metrics in zip(seeds, per_seed):
            for r in metrics[:n_rounds]:
                row = {"round": r["round"], "seed": int(seed), "strategy": name, "n_labelled": r["n_labelled"]}
                row.update({short: r[key] for key, short in COMPARED_METRICS.items() if key in r})
                out.append(row)
    return out


def _format_difference(row: dict, name: str, short: str, scale: float) -> str:
    mean, se = row[f"{name}_minus_random_{short}"], row[f"{name}_minus_random_{short}_se"]
    if mean == 0 and not se:
        return "0 (same model)"
    p = row[f"{name}_minus_random_{short}_p"]
    return f"{mean * scale:+.2f} ± {se * scale:.2f} (" + ("p < 0.001" if p < 0.001 else f"p {p:.3f}") + ")"


def comparison_markdown(rows: Sequence[dict], n_seeds: int, names: Sequence[str] = ("active", "random"),
                        summary: dict | None = None) -> str:
    """Markdown tables of :func:`compare_strategies` rows, one per metric (all atoms, Na, Cl).

    Errors in 10⁻³ e: mean ± standard deviation (ddof 1) over seeds; differences: paired over seeds,
    variant − random, mean ± standard error with the two-sided paired t-test p value (negative: the
    variant has the smaller error). A last row gives the same for the per-seed mean over rounds 1…R.
    """
    scale = 1e3
    variants = [n for n in names if n != "random"]
    blocks = []
    for short, title in (("mae", "all atoms"), ("mae_Na", "Na"), ("mae_Cl", "Cl")):
        if not all(f"{n}_{short}" in r for r in rows for n in names):
            continue
        lines = [f"**Held-out charge MAE, {title} (10⁻³ e)**", "",
                 "| round | frames labelled | " + " | ".join(names) + " | "
                 + " | ".join(f"{n} − random" for n in variants) + " |",
                 "|---:|---:|" + "---:|" * (len(names) + len(variants))]
        for r in [*rows, *([summary] if summary and f"random_{short}" in summary else [])]:
            cells = [f"{r[f'{n}_{short}'] * scale:.2f} ± {r[f'{n}_{short}_std'] * scale:.2f}" for n in names]
            cells += [_format_difference(r, n, short, scale) for n in variants]
            lines.append(f"| {r['round']} | {r['n_labelled']} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    blocks.append(f"Mean ± standard deviation over {n_seeds} seed(s); differences paired by seed (same start "
                  "model, same training seed): mean ± standard error, two-sided paired t-test p. Row "
                  "'1–R': per-seed mean over rounds 1…R.")
    return "\n\n".join(blocks)


def plot_comparison(rows: Sequence[dict], path: str | os.PathLike, n_seeds: int,
                    names: Sequence[str] = ("active", "random")) -> None:
    """Held-out charge MAE against frames labelled for each strategy (all atoms ± std; Na and Cl), and the
    paired difference of each variant to random ± standard error, all atoms and Cl (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((ax1, ax2), (ax3, ax4)) = plt.subplots(2, 2, figsize=(11, 7.5))
    x = np.array([r["n_labelled"] for r in rows], dtype=float)
    markers = "os^vD<>"
    for k, name in enumerate(names):
        style = "--" if name == "random" else "-"
        shift = (k - (len(names) - 1) / 2) * 0.15
        y = np.array([r[f"{name}_mae"] for r in rows])
        err = np.nan_to_num(np.array([r[f"{name}_mae_std"] for r in rows]))
        ax1.errorbar(x + shift, y, yerr=err, fmt=markers[k % 7] + style, capsize=3, label=name)
        for sp, ls in (("Na", ":"), ("Cl", "-.")):
            key = f"{name}_mae_{sp}"
            if all(key in r for r in rows):
                ax2.plot(x, [r[key] for r in rows], markers[k % 7] + ls, label=f"{name} {sp}")
        for ax, short in ((ax3, "mae"), (ax4, "mae_Cl")):
            key = f"{name}_minus_random_{short}"
            if name != "random" and all(key in r for r in rows):
                d = np.array([r[key] for r in rows])
                se = np.nan_to_num(np.array([r[f"{key}_se"] for r in rows]))
                ax.errorbar(x + shift, d, yerr=se, fmt=markers[k % 7] + "-", capsize=3, label=f"{name} − random")
    ax1.set(xlabel="frames labelled", ylabel="held-out charge MAE (e)",
            title=f"all atoms (mean ± std, {n_seeds} seed(s))")
    ax2.set(xlabel="frames labelled", ylabel="held-out charge MAE (e)", title="ions (mean over seeds)")
    for ax, title in ((ax3, "all atoms"), (ax4, "Cl")):
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set(xlabel="frames labelled", ylabel="MAE difference (e)",
               title=f"{title}: paired difference to random (mean ± SE)")
        ax.legend(fontsize=8)
    ax1.legend()
    ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save_figure(fig, Path(path))
    plt.close(fig)


def uncertainty_diagnostics(models: Sequence, frames: Sequence[Frame]) -> dict[str, dict[str, float]]:
    """How well each uncertainty measure ranks the real charge errors of labelled frames.

    Spearman rank correlation, over atoms, between |q_pred − q_ref| of member 0 and (a) its per-atom
    charge-head entropy, (b) the committee's per-atom charge standard deviation (with ≥ 2 models);
    overall and per species. A useful measure has ρ > 0.

    Returns
    -------
    dict
        ``{'entropy': {'all': ρ, 'H': ρ, ...}, 'committee': {...}, 'mae': {'all': e, 'H': e, ...}}``.
    """
    from scipy.stats import spearmanr

    from polarff.model import predict

    preds = [predict(m, frames) for m in models]
    reference = np.concatenate([f.labels["charges"] for f in frames])
    error = np.abs(preds[0]["charges"] - reference)
    symbols = np.concatenate([np.asarray(f.symbols) for f in frames])
    measures = {"entropy": preds[0]["entropy_charges"]}
    if len(preds) > 1:
        measures["committee"] = np.std([p["charges"] for p in preds], axis=0)
    out: dict[str, dict[str, float]] = {"mae": {"all": float(error.mean())}}
    for name, values in measures.items():
        out[name] = {"all": float(spearmanr(values, error)[0])}
    for sp in sorted(set(symbols)):
        sel = symbols == sp
        out["mae"][sp] = float(error[sel].mean())
        for name, values in measures.items():
            out[name][sp] = float(spearmanr(values[sel], error[sel])[0])
    return out


# ------------------------------------------------------------------------------------------- CLI
class Active(Command):
    name = "active"
    help = "active learning: MD candidates → entropy/committee scores → diverse selection → label → retrain"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("initial", nargs="+", help="labelled extxyz file(s): initial training set")
        p.add_argument("--heldout", required=True, help="labelled extxyz: fixed evaluation set")
        p.add_argument("-o", "--output", required=True, help="run folder (rerun the same command to resume)")
        p.add_argument("--pool", help="extxyz candidate pool (sets --sampler pool)")
        p.add_argument("--sampler", choices=SAMPLERS, help="candidate source (default polarff MD; 'pool' with --pool)")
        p.add_argument("--model", nargs="+", help="initial model(s) (.pff), one per committee member")
        p.add_argument("--config", help="YAML file with FitConfig options for training")
        p.add_argument("--rounds", type=int, default=3)
        p.add_argument("--per-round", type=int, default=5, help="frames labelled per round")
        p.add_argument("--candidates", type=int, default=20, help="candidates per round (pool: 0 = all)")
        p.add_argument("--strategy", choices=STRATEGIES, default="active")
        p.add_argument("--committee", type=int, default=1)
        p.add_argument("--diversity", type=float, default=1.0)
        p.add_argument("--ion", default="NaCl", choices=["NaCl", "KCl", "LiCl"])
        p.add_argument("--pairs", type=int, default=3)
        p.add_argument("--waters", type=int, default=32)
        p.add_argument("--md-equilibration-ps", type=float, default=5.0, help="MD equilibration per round (ps)")
        p.add_argument("--md-interval-ps", type=float, default=0.5, help="MD time between candidates (ps)")
        p.add_argument("--md-implementation", choices=["torch", "python"], default="torch",
                       help="polarff force for the polarff sampler (TorchForce or PythonForce)")
        p.add_argument("--entropy-weight", type=float, default=1.0, help="weight of entropy in the score")
        p.add_argument("--epochs", type=int, help="epochs of the round-0 fit")
        p.add_argument("--retrain-epochs", type=int, default=60)
        p.add_argument("--wall-time", type=float, help="budget of this invocation (s)")
        p.add_argument("--seed", type=int, default=0)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from polarff.cli import _fit_config, _load_frames
        from polarff.io import read_frames

        args.n_bins = args.hidden = args.cutoff = None
        fit_cfg = _fit_config(args)
        sampler = args.sampler or ("pool" if args.pool else "polarff")
        pool = read_frames(args.pool) if args.pool else None
        cfg = ActiveConfig(rounds=args.rounds, frames_per_round=args.per_round,
                           candidates_per_round=(args.candidates or None), strategy=args.strategy,
                           sampler=sampler, ion=args.ion, n_pairs=args.pairs, n_waters=args.waters,
                           committee=args.committee, diversity=args.diversity, retrain_epochs=args.retrain_epochs,
                           wall_time_s=args.wall_time, seed=args.seed, md_equilibration_ps=args.md_equilibration_ps,
                           md_interval_ps=args.md_interval_ps, md_implementation=args.md_implementation,
                           entropy_weight=args.entropy_weight)
        result = run_active(args.output, _load_frames(args.initial), read_frames(args.heldout), fit_cfg, cfg,
                            pool=pool, initial_models=args.model)
        for row in result.metrics:
            print(f"round {row['round']}: {row['n_labelled']:3d} frames labelled  held-out charge MAE "
                  f"{row['heldout_charge_mae']:.4f} e  mean entropy {row['heldout_mean_entropy']:.3f}")
        print(f"{result.status}; metrics in {Path(args.output) / 'metrics.csv'}")
        return 0 if result.status in ("done", "pool exhausted") else 3


class Clusters(Command):
    name = "clusters"
    help = "cut ion-centred clusters from periodic frames and label them (GFN2-xTB finite-field α, Born charges)"

    @staticmethod
    def add_arguments(p):
        p.add_argument("input", help="extxyz with periodic frames")
        p.add_argument("-o", "--output", required=True, help="labelled clusters (extxyz; Born charges in "
                       "column born_charges)")
        p.add_argument("--radius", type=float, default=4.0, help="sphere radius around the ion (Å)")
        p.add_argument("--centres", nargs="+", default=["Na", "Cl"], help="centre species")
        p.add_argument("--max-per-species", type=int, help="clusters per species and frame")
        p.add_argument("--max-frames", type=int, help="use only the first N frames")

    @staticmethod
    def run(args):
        from polarff.clusters import ion_centred_clusters, label_cluster, write_clusters
        from polarff.io import read_frames

        frames = read_frames(args.input)[:args.max_frames]
        labelled = []
        for f in frames:
            for c in ion_centred_clusters(f, args.radius, args.centres, args.max_per_species):
                labelled.append(label_cluster(c))
                print(f"{c.info['parent_index']}: {c.symbols[0]} cluster, {c.n_atoms} atoms, α_iso "
                      f"{np.trace(labelled[-1].labels['polarizability']) / 3:.3f} Å³ (GFN2), sum-rule error "
                      f"{labelled[-1].info['born_sum_rule_error']:.1e} e")
        write_clusters(args.output, labelled)
        print(f"wrote {len(labelled)} clusters to {args.output}")
        return 0


class CalibrateAlpha(Command):
    name = "calibrate-alpha"
    help = "DFT (pyscf) polarizabilities of small clusters → per-species scales for D4 / GFN2 α"

    @staticmethod
    def add_arguments(p):
        p.add_argument("frames", nargs="*", help="periodic frames to cut ion/water clusters from")
        p.add_argument("-o", "--output", required=True, help="calibration JSON (resumable)")
        p.add_argument("--max-waters", type=int, default=3, help="waters around each ion (default 3)")
        p.add_argument("--xc", default="b3lyp")
        p.add_argument("--basis", default="def2-svpd")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--apply", help="labelled data set whose D4 α to scale")
        p.add_argument("--scaled", help="where to write the scaled data set (with --apply)")

    @staticmethod
    def run(args):
        from polarff.clusters import apply_species_scales, calibrate, calibration_clusters
        from polarff.io import read_frames, write_frames

        frames = [f for path in args.frames for f in read_frames(path)[:1]]
        calib = calibrate(calibration_clusters(frames, args.max_waters), args.output, xc=args.xc,
                          basis=args.basis, threads=args.threads)
        for row in calib.summary():
            print(f"{row['name']:12s} α DFT {row['alpha_dft']:7.3f}  GFN2 {row['alpha_gfn2']:7.3f}  "
                  f"D4 {row['alpha_d4']:7.3f}  scaled D4 {row['alpha_d4_scaled']:7.3f}  scaled GFN2 "
                  f"{row['alpha_gfn2_scaled']:7.3f} Å³   DFT {row['seconds_dft']:6.1f} s "
                  f"({row['n_basis']} functions)")
        for base, scales in calib.scales.items():
            print(f"scale {base} → DFT: " + "  ".join(f"{s} {v:.3f}" for s, v in scales.items()))
        if args.apply:
            if not args.scaled:
                raise ConfigError("--apply needs --scaled OUTPUT.xyz")
            scaled = apply_species_scales(read_frames(args.apply), calib.scales["d4"], source=calib.method)
            write_frames(args.scaled, scaled)
            print(f"wrote {len(scaled)} frames with scaled α to {args.scaled}")
        return 0


for _command in (Active, Clusters, CalibrateAlpha):
    register(_command)
