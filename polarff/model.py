"""Multi-output Keras classifier (TensorFlow backend): training and prediction.

Network (per atom): normalised descriptor ⊕ species one-hot → dense trunk (smooth activation) →
one softmax head per target (``charges``, ``polarizabilities``). Each head has species-specific output
weights (a dense layer with n_species · n_classes outputs, the atom's species block selected), and padded
classes of a species are masked out of its softmax.

Loss (per batch of whole frames)::

    L = w_q · CE(two-hot charge targets)   over atoms with charge labels
      + w_α · CE(two-hot α targets)        over atoms with α labels
      + w_c · mean_frames (Σ_i Σ_k p_ik c_k − Q)²          charge conservation, on expected charges
      + Σ extra frame-level terms (dipoles, polarizability tensors; see polarff.response_tf)

A head is trained only where its labels exist (masked otherwise). Prediction returns expected charges
neutralised exactly per frame (uniform shift), expected polarizabilities, class probabilities and the
per-atom entropy (nats) used by active learning.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from polarff.artifact import TARGETS, NetworkSpec, PolarffModel, make_card
from polarff.data import Frame, dataset_hash, species_of, split_indices
from polarff.descriptors import DescriptorConfig, DescriptorSet, describe_frames
from polarff.discretize import fit_binning
from polarff.errors import ConfigError


@dataclass
class FitConfig:
    """Training settings (all have defaults; a YAML file may override any of them).

    Attributes
    ----------
    cutoff, n_radial, n_angular : descriptor settings (Å, counts)
    hidden : trunk widths
    activation : trunk activation ('silu' or 'tanh')
    n_bins : classes per species per target
    epochs : passes over the training frames
    batch_frames : frames per optimisation step
    learning_rate : initial Adam step (cosine decay to 2 % of it)
    weight_charges, weight_polarizabilities : cross-entropy weights
    weight_conservation : weight of (ΣQ_pred − Q)² in e⁻²
    validation_fraction, test_fraction : seeded split of the frames
    seed : seed of the split, initialisation and batch order
    eval_every : epochs between validation evaluations (best validation charge MAE is kept)
    species : model species (default: those in the data)
    bin_ranges : ``{target: {species: [low, high]}}``: uniform class centres over [low, high] for a
        (target, species) without per-atom labels (e.g. TNEP data, learned through dipoles only)
    """

    cutoff: float = 5.0
    n_radial: int = 8
    n_angular: int = 4
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    activation: str = "silu"
    n_bins: int = 32
    epochs: int = 200
    batch_frames: int = 4
    learning_rate: float = 2e-3
    weight_charges: float = 1.0
    weight_polarizabilities: float = 1.0
    weight_conservation: float = 10.0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    eval_every: int = 10
    species: list[str] | None = None
    bin_ranges: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "FitConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown option(s) {unknown}; expected some of {sorted(known)}")
        cfg = cls(**d)
        if cfg.activation not in ("silu", "tanh"):
            raise ConfigError(f"{source}: activation: expected 'silu' or 'tanh', found {cfg.activation!r}")
        for name in ("epochs", "batch_frames", "n_bins"):
            if getattr(cfg, name) < 1:
                raise ConfigError(f"{source}: {name}: expected >= 1, found {getattr(cfg, name)}")
        return cfg


# ----------------------------------------------------------------------------------- Keras network
def build_keras_network(model: PolarffModel):
    """Keras functional model: inputs (features, species one-hot) → {target: class probabilities}."""
    import keras
    from keras import layers, ops

    n_feat = model.descriptor.n_features
    n_spec = model.descriptor.n_species
    x_in = keras.Input((n_feat,), name="features")
    oh_in = keras.Input((n_spec,), name="species_onehot")
    mean = model.network.feature_mean.astype("float32")
    std = model.network.feature_std.astype("float32")
    h = layers.Lambda(lambda x: (x - mean) / std, name="normalise")(x_in)
    h = layers.Concatenate(name="with_species")([h, oh_in])
    for k, width in enumerate(model.network.hidden):
        h = layers.Dense(width, activation=model.network.activation, name=f"dense_{k}")(h)
    outputs = {}
    for target, binning in model.bins.items():
        n_cls = binning.n_classes
        logits = layers.Dense(n_spec * n_cls, name=f"head_{target}")(h)
        log_valid = np.where(binning.valid, 0.0, -1e9).astype("float32")  # (S, K)

        def select(args, n_cls=n_cls, log_valid=log_valid):
            lg, oh = args
            lg = ops.reshape(lg, (-1, n_spec, n_cls))
            lg = ops.sum(lg * oh[:, :, None], axis=1) + ops.matmul(oh, log_valid)
            return ops.softmax(lg, axis=-1)

        outputs[target] = layers.Lambda(select, name=f"probs_{target}")([logits, oh_in])
    net = keras.Model([x_in, oh_in], outputs, name="polarff_classifier")
    if model.weights:
        set_keras_weights(net, model)
    return net


def set_keras_weights(net, model: PolarffModel) -> None:
    """Copy ``model.weights`` into the Keras network's dense layers."""
    for layer in net.layers:
        if layer.name.startswith(("dense_", "head_")):
            layer.set_weights([model.weights[f"{layer.name}/kernel"], model.weights[f"{layer.name}/bias"]])


def get_keras_weights(net) -> dict[str, np.ndarray]:
    """Dense-layer weights of the Keras network by name (Keras layout)."""
    out = {}
    for layer in net.layers:
        if layer.name.startswith(("dense_", "head_")):
            kernel, bias = layer.get_weights()
            out[f"{layer.name}/kernel"] = np.asarray(kernel)
            out[f"{layer.name}/bias"] = np.asarray(bias)
    return out


# --------------------------------------------------------------------------------------- training
@dataclass
class PreparedData:
    """Per-atom arrays of a set of frames, ready for batching (float32 where fed to TF)."""

    frames: list[Frame]
    desc: DescriptorSet
    onehot: np.ndarray
    targets: dict[str, np.ndarray]  # two-hot (M, K)
    masks: dict[str, np.ndarray]  # (M,) float
    values: dict[str, np.ndarray]  # raw labels (M,), 0 where absent
    total_charge: np.ndarray  # (F,)


def prepare(model: PolarffModel, frames: list[Frame], progress: bool = False) -> PreparedData:
    """Descriptors, one-hot species, two-hot targets and masks for ``frames``."""
    desc = describe_frames(model.descriptor, frames, progress=progress)
    onehot = np.eye(model.descriptor.n_species, dtype=np.float32)[desc.species]
    targets, masks, values = {}, {}, {}
    for target, binning in model.bins.items():
        vals = np.concatenate([f.labels.get(target, np.zeros(f.n_atoms)) for f in frames])
        mask = np.concatenate([np.full(f.n_atoms, target in f.labels, dtype=np.float32) for f in frames])
        targets[target] = binning.two_hot(desc.species, vals).astype(np.float32)
        masks[target], values[target] = mask, vals
    q = np.array([f.total_charge for f in frames])
    return PreparedData(frames, desc, onehot, targets, masks, values, q)


def init_model(frames: list[Frame], cfg: FitConfig) -> PolarffModel:
    """Descriptor settings, bins and normalisation from the training frames (weights empty)."""
    species = cfg.species or species_of(frames)
    dcfg = DescriptorConfig(species=species, cutoff=cfg.cutoff, n_radial=cfg.n_radial, n_angular=cfg.n_angular)
    desc = describe_frames(dcfg, frames)
    bins = {}
    for target in TARGETS:
        vals = np.concatenate([f.labels[target] for f in frames if target in f.labels] or [np.zeros(0)])
        spec = np.concatenate([dcfg.species_index(f.symbols) for f in frames if target in f.labels]
                              or [np.zeros(0, dtype=np.int64)])
        bins[target] = fit_binning(target, species, spec, vals, n_bins=cfg.n_bins)
        for sp_name, (low, high) in cfg.bin_ranges.get(target, {}).items():
            if sp_name not in species:
                raise ConfigError(f"bin_ranges.{target}: species {sp_name!r} is not a model species {species}")
            s = species.index(sp_name)
            if np.any(spec == s):
                raise ConfigError(f"bin_ranges.{target}.{sp_name}: the data label this species; ranges are "
                                  "only for targets learned without per-atom labels")
            bins[target].set_uniform(s, float(low), float(high))
    mean = desc.features.mean(axis=0)
    std = desc.features.std(axis=0) + 1e-6 * (1.0 + np.abs(mean))
    net = NetworkSpec(list(cfg.hidden), cfg.activation, mean, std)
    return PolarffModel(dcfg, bins, net, {}, {})


FrameLoss = Callable[..., object]
"""Extra loss term: ``term(frame_ids, charges, polarizabilities, batch) -> scalar tf.Tensor``, where
``charges`` are neutralised expected charges (M,), ``polarizabilities`` expected α (M,), and ``batch`` the
dict of batch tensors (see :func:`fit`)."""


def fit(frames: Sequence[Frame], cfg: FitConfig, out_path: str | os.PathLike | None = None,
        progress: bool = True, extra_terms: dict[str, tuple[float, FrameLoss]] | None = None,
        split: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        init_from: PolarffModel | None = None, log: Callable[[str], None] | None = None
        ) -> tuple[PolarffModel, dict]:
    """Train a classifier on ``frames`` and return the model (and save it if ``out_path``).

    Parameters
    ----------
    frames : sequence of Frame
        Labelled frames (any of ``charges``, ``polarizabilities`` per atom).
    cfg : FitConfig
        Settings; ``cfg.seed`` fixes split, initialisation and batch order (same seed → same model).
    out_path : path-like, optional
        Where to write the ``.pff`` artifact (atomically).
    progress : bool
        Print one progress line per evaluation to stderr.
    extra_terms : dict, optional
        Frame-level loss terms ``name -> (weight, term)`` (see :data:`FrameLoss`).
    split : (train, validation, test) index arrays, optional
        Overrides the seeded split.
    init_from : PolarffModel, optional
        Warm start: reuse its descriptor, bins, normalisation and weights.

    Returns
    -------
    model : PolarffModel
        With the weights of the best validation epoch and a model card.
    report : dict
        Metrics on the validation and test splits, history, timings.
    """
    import keras
    import tensorflow as tf

    log = log or (lambda msg: print(msg, file=__import__("sys").stderr, flush=True))
    frames = list(frames)
    scaling = label_scaling(frames)  # refuses mixed calibrations before any training
    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    if split is None:
        test_frac = cfg.test_fraction
        split = split_indices(len(frames), (1 - cfg.validation_fraction - test_frac,
                                            cfg.validation_fraction, test_frac), seed=cfg.seed)
    train_idx, val_idx, test_idx = split
    train = [frames[i] for i in train_idx]
    t0 = time.perf_counter()
    model = init_model(train, cfg) if init_from is None else PolarffModel(
        init_from.descriptor, init_from.bins, init_from.network, dict(init_from.weights), {})
    data_tr = prepare(model, train, progress=progress)
    data_val = prepare(model, [frames[i] for i in val_idx]) if len(val_idx) else None
    t_desc = time.perf_counter() - t0

    net = build_keras_network(model)
    steps_per_epoch = int(np.ceil(len(train) / cfg.batch_frames))
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, cfg.epochs * steps_per_epoch, alpha=0.02)
    opt = keras.optimizers.Adam(schedule)
    centres = {t: tf.constant(b.centres, tf.float32) for t, b in model.bins.items()}
    weights = {"charges": cfg.weight_charges, "polarizabilities": cfg.weight_polarizabilities}
    extra_terms = extra_terms or {}

    def loss_fn(batch, training):
        probs = net([batch["x"], batch["onehot"]], training=training)
        losses = {}
        expected = {}
        for target, p in probs.items():
            logp = tf.math.log(tf.clip_by_value(p, 1e-12, 1.0))
            ce = -tf.reduce_sum(batch[f"t_{target}"] * logp, axis=1)
            m = batch[f"m_{target}"]
            losses[f"ce_{target}"] = weights[target] * tf.reduce_sum(ce * m) / tf.maximum(tf.reduce_sum(m), 1.0)
            c = tf.gather(centres[target], batch["species"])
            expected[target] = tf.reduce_sum(p * c, axis=1)
        seg, nseg = batch["frame"], batch["n_frames"]
        qsum = tf.math.unsorted_segment_sum(expected["charges"], seg, nseg)
        natoms = tf.math.unsorted_segment_sum(tf.ones_like(expected["charges"]), seg, nseg)
        excess = qsum - batch["total_charge"]
        losses["conservation"] = cfg.weight_conservation * tf.reduce_mean(tf.square(excess))
        q_neutral = expected["charges"] - tf.gather(excess / natoms, seg)
        for name, (w, term) in extra_terms.items():
            losses[name] = w * term(seg, q_neutral, expected["polarizabilities"], batch)
        return tf.add_n(list(losses.values())), losses

    @tf.function(reduce_retracing=True)
    def train_step(batch):
        with tf.GradientTape() as tape:
            total, parts = loss_fn(batch, True)
        grads = tape.gradient(total, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables))
        return total, parts

    rng = np.random.default_rng(cfg.seed)
    history, best = [], (np.inf, None, -1)
    bar_t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        order = rng.permutation(len(train))
        totals = []
        for b in range(steps_per_epoch):
            sel = order[b * cfg.batch_frames:(b + 1) * cfg.batch_frames]
            total, _ = train_step(make_batch(data_tr, sel, extra=extra_terms))
            totals.append(float(total))
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            row = {"epoch": epoch, "train_loss": float(np.mean(totals))}
            if data_val is not None:
                pv = predict_prepared(net, model, data_val)
                row.update({f"val_{k}": v for k, v in summarize(model, data_val, pv).items()
                            if k in ("charge_mae", "polarizability_mae", "charge_accuracy")})
                score = row.get("val_charge_mae", np.nan)
                score = row.get("val_polarizability_mae", np.inf) if not np.isfinite(score) else score
                if extra_terms and data_val is not None:
                    score = float(np.mean([float(v) for v in loss_fn(make_batch(
                        data_val, np.arange(len(data_val.frames)), extra=extra_terms), False)[1].values()]))
                    row["val_loss"] = score
            else:
                score = row["train_loss"]
            if score < best[0]:
                best = (score, get_keras_weights(net), epoch)
            history.append(row)
            if progress:
                elapsed = time.perf_counter() - bar_t0
                eta = elapsed / epoch * (cfg.epochs - epoch)
                shown = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
                log(f"[fit] epoch {epoch}/{cfg.epochs}  {elapsed:5.0f} s  ETA {eta:4.0f} s  {shown}")
    model.weights = best[1] if best[1] is not None else get_keras_weights(net)
    t_train = time.perf_counter() - bar_t0
    set_keras_weights(net, model)
    report = {"best_epoch": best[2], "history": history, "seconds": {"descriptors": t_desc, "train": t_train}}
    for name, idx in (("validation", val_idx), ("test", test_idx)):
        if len(idx):
            part = prepare(model, [frames[i] for i in idx])
            report[name] = summarize(model, part, predict_prepared(net, model, part))
    metrics = {k: report[k] for k in ("validation", "test") if k in report}
    model.card = make_card(model.species, cfg.seed, dataset_hash(frames),
                           {"train": len(train_idx), "validation": len(val_idx), "test": len(test_idx)},
                           metrics, asdict(cfg))
    model.card["split"] = {"train": np.asarray(train_idx).tolist(), "validation": np.asarray(val_idx).tolist(),
                           "test": np.asarray(test_idx).tolist()}
    if scaling:
        model.card["label_scaling"] = scaling
    if out_path is not None:
        model.save(out_path)
    return model, report


def label_scaling(frames: Sequence[Frame]) -> dict:
    """Calibration factors applied to the labels (``info['charge_scale']`` / ``info['alpha_scale']`` and
    their ``*_source``), when every frame carries the same ones; ``{}`` when none does.

    Raises
    ------
    ConfigError
        If the frames mix scaled and unscaled labels, or different factors: a model trained on them would
        learn two different charge (or α) scales.
    """
    out = {}
    for key in ("charge_scale", "alpha_scale"):
        values = {(f.info.get(key), f.info.get(f"{key}_source")) for f in frames}
        if len(values) > 1:
            raise ConfigError(f"the training frames mix {key} settings {sorted(map(str, values))}: scale every "
                              "frame with the same calibration (or none)")
        value, source = values.pop()
        if value is not None:
            out[key] = {"factors": value, "source": source or ""}
    return out


def make_batch(data: PreparedData, frame_sel: np.ndarray, extra=None) -> dict:
    """Tensors for the atoms of frames ``frame_sel`` (local frame ids 0..len-1)."""
    import tensorflow as tf

    frame_sel = np.asarray(frame_sel)
    offs = data.desc.offsets
    atoms = np.concatenate([np.arange(offs[f], offs[f + 1]) for f in frame_sel])
    local = np.concatenate([np.full(offs[f + 1] - offs[f], k, dtype=np.int32) for k, f in enumerate(frame_sel)])
    batch = {"x": tf.constant(data.desc.features[atoms], tf.float32),
             "onehot": tf.constant(data.onehot[atoms]),
             "species": tf.constant(data.desc.species[atoms].astype(np.int32)),
             "frame": tf.constant(local), "n_frames": tf.constant(len(frame_sel), tf.int32),
             "total_charge": tf.constant(data.total_charge[frame_sel], tf.float32)}
    for target in data.targets:
        batch[f"t_{target}"] = tf.constant(data.targets[target][atoms])
        batch[f"m_{target}"] = tf.constant(data.masks[target][atoms])
    if extra:
        for name, (_, term) in extra.items():
            if hasattr(term, "batch_inputs"):
                batch.update(term.batch_inputs(data, frame_sel))
    return batch


# ------------------------------------------------------------------------------------- prediction
def predict_prepared(net, model: PolarffModel, data: PreparedData) -> dict[str, np.ndarray]:
    """Run the Keras network on prepared data; see :func:`predict` for the returned arrays."""
    probs = net.predict_on_batch([data.desc.features.astype(np.float32), data.onehot])
    probs = {k: np.asarray(v, dtype=np.float64) for k, v in probs.items()}
    return expected_values(model, data.desc.species, data.desc.frame_index, data.total_charge, probs)


def expected_values(model: PolarffModel, species: np.ndarray, frame_index: np.ndarray,
                    total_charge: np.ndarray, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Expected charges (neutralised per frame), expected α, classes and entropy from probabilities."""
    out = {}
    for target, p in probs.items():
        p = p / p.sum(axis=1, keepdims=True)
        out[f"probs_{target}"] = p
        out[target] = np.sum(p * model.bins[target].centres[species], axis=1)
        out[f"class_{target}"] = np.argmax(p, axis=1)
        out[f"entropy_{target}"] = -np.sum(p * np.log(np.clip(p, 1e-300, None)), axis=1)
    q = out["charges"]
    n_frames = int(frame_index.max()) + 1 if len(frame_index) else 0
    excess = np.bincount(frame_index, weights=q, minlength=n_frames) - total_charge
    counts = np.bincount(frame_index, minlength=n_frames)
    out["charges_raw"] = q.copy()
    out["charges"] = q - (excess / counts)[frame_index]
    out["conservation_error_raw"] = excess
    out["entropy"] = out["entropy_charges"] + out["entropy_polarizabilities"]
    return out


def predict(model: PolarffModel, frames: Sequence[Frame], net=None) -> dict[str, np.ndarray]:
    """Per-atom predictions for ``frames`` (atoms of all frames concatenated, frame after frame).

    Returns
    -------
    dict of ndarray
        ``charges`` (e, neutralised exactly per frame), ``polarizabilities`` (Å³), ``probs_<target>``,
        ``class_<target>``, ``entropy_<target>`` and ``entropy`` (nats, sum of both heads),
        ``charges_raw`` (before neutralisation), ``frame_index``.
    """
    data = prepare(model, list(frames))
    net = net if net is not None else build_keras_network(model)
    out = predict_prepared(net, model, data)
    out["frame_index"] = data.desc.frame_index
    out["species"] = data.desc.species
    return out


def summarize(model: PolarffModel, data: PreparedData, pred: dict[str, np.ndarray]) -> dict:
    """Accuracy, MAE/RMSE per species and conservation error of predictions against labels."""
    res: dict = {}
    species = data.desc.species
    for target, short in (("charges", "charge"), ("polarizabilities", "polarizability")):
        m = data.masks[target] > 0
        if not m.any():
            continue
        err = pred[target][m] - data.values[target][m]
        true_cls = model.bins[target].value_to_class(species[m], data.values[target][m])
        res[f"{short}_mae"] = float(np.mean(np.abs(err)))
        res[f"{short}_rmse"] = float(np.sqrt(np.mean(err ** 2)))
        res[f"{short}_accuracy"] = float(np.mean(pred[f"class_{target}"][m] == true_cls))
        per = {}
        for s, name in enumerate(model.species):
            sel = species[m] == s
            if sel.any():
                per[name] = {"mae": float(np.mean(np.abs(err[sel]))), "rmse": float(np.sqrt(np.mean(err[sel] ** 2))),
                             "accuracy": float(np.mean(pred[f"class_{target}"][m][sel] == true_cls[sel])),
                             "n": int(sel.sum())}
        res[f"{short}_per_species"] = per
    fid = data.desc.frame_index
    n_frames = len(data.frames)
    q_sum = np.bincount(fid, weights=pred["charges"], minlength=n_frames)
    res["conservation_error_max"] = float(np.max(np.abs(q_sum - data.total_charge))) if n_frames else 0.0
    res["conservation_error_raw_max"] = float(np.max(np.abs(pred["conservation_error_raw"]))) if n_frames else 0.0
    res["mean_entropy"] = float(np.mean(pred["entropy"]))
    return res
