"""TensorFlow twin of :mod:`polarff.response` for the training loss.

Same physics, same conventions and the same :class:`~polarff.response.FrameGeometry` (see that module's
docstring): exponential Thole damping (a = 0.39 by default, or per atom with pairs using ``min(a_i, a_j)``),
permanent field from other molecules' charges, dipole–dipole tensor over all pairs, periodic pair terms
switched off smoothly between ``switch_on`` and ``cutoff``, frame and row-sum molecular polarizabilities.

Charges and polarizabilities are differentiable tensors; the geometry is constant (positions are not
differentiated). The linear system ``(I − A T) X = A F`` (equivalent to ``(A⁻¹ − T) X = F``) is solved
densely with :func:`tf.linalg.solve` for the 4 right-hand sides F = [field, uniform x, y, z], one LU per
call. Unlike the numpy version (Cholesky of the symmetric scaled form) it does not detect a polarization
catastrophe; training keeps α in a physical range.

Convert a geometry once with :func:`to_tensors` and pass the resulting :class:`TFGeometry` (a
NamedTuple, hence a valid ``tf.function`` argument) in the training loop; passing a ``FrameGeometry``
works too but converts it on every call.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from polarff.response import ALPHA_FLOOR, THOLE_A, FrameGeometry


class TFGeometry(NamedTuple):
    """Constant tensors of a :class:`FrameGeometry` (same meaning and units as its attributes)."""

    r_cubed: tf.Tensor            # (N, N) Å³, 1 on the diagonal
    field_kernel: tf.Tensor       # (N, N, 3) Å⁻², intermolecular, switched
    tensor_rr: tf.Tensor          # (N, N, 3, 3) Å⁻³, w·3rrᵀ/r⁵
    tensor_identity: tf.Tensor    # (N, N) Å⁻³, w/r³
    dipole_positions: tf.Tensor   # (N, 3) Å
    relative_positions: tf.Tensor  # (N, 3) Å
    membership: tf.Tensor         # (M, N)


def to_tensors(geometry: FrameGeometry, dtype: tf.DType = tf.float64) -> TFGeometry:
    """Convert a numpy :class:`FrameGeometry` into constant tensors of ``dtype``."""
    return TFGeometry(*(tf.constant(np.asarray(getattr(geometry, name)), dtype=dtype)
                        for name in TFGeometry._fields))


def _tensors(geometry: FrameGeometry | TFGeometry, dtype: tf.DType) -> TFGeometry:
    if isinstance(geometry, TFGeometry):
        if geometry.r_cubed.dtype != dtype:
            return TFGeometry(*(tf.cast(t, dtype) for t in geometry))
        return geometry
    return to_tensors(geometry, dtype)


def pair_thole(a: float | np.ndarray, dtype: tf.DType) -> tf.Tensor:
    """Thole parameter of the pairs: ``a`` for a number, ``min(a_i, a_j)`` (N, N) for per-atom values (N,).

    Unlike :func:`polarff.response.pair_thole` it does not check the values (it runs inside the loss)."""
    if not tf.is_tensor(a):
        a = np.asarray(a, dtype=np.float64)  # not tf.convert_to_tensor: it makes a Python float float32
    a = tf.cast(a, dtype)
    if a.shape.rank == 0:
        return a
    return tf.minimum(a[:, None], a[None, :])


def damping(r_cubed: tf.Tensor, alpha: tf.Tensor, a: float | np.ndarray = THOLE_A) -> tuple[tf.Tensor, tf.Tensor]:
    """(λ3, λ5) of every pair, (N, N) each, from r³ (Å³), the atomic polarizabilities α (Å³) and the Thole
    parameter ``a`` (a number, or per atom)."""
    product = alpha[:, None] * alpha[None, :]
    au3 = pair_thole(a, product.dtype) * r_cubed / tf.sqrt(tf.maximum(product, tf.cast(ALPHA_FLOOR**2, product.dtype)))
    decay = tf.exp(-au3)
    return 1.0 - decay, 1.0 - (1.0 + au3) * decay


def permanent_field(geometry: FrameGeometry | TFGeometry, charges: tf.Tensor, alpha: tf.Tensor,
                    a: float | np.ndarray = THOLE_A) -> tf.Tensor:
    """Damped field (e/Å²) on each atom from the charges of the other molecules, shape (N, 3)."""
    g = _tensors(geometry, alpha.dtype)
    lambda3, _ = damping(g.r_cubed, alpha, a)
    return tf.einsum("ij,ijk,j->ik", lambda3, g.field_kernel, charges)


def dipole_tensor(geometry: FrameGeometry | TFGeometry, alpha: tf.Tensor, a: float | np.ndarray = THOLE_A
                  ) -> tf.Tensor:
    """Damped dipole–dipole matrix T (Å⁻³), shape (3N, 3N), index ``3 i + component``."""
    g = _tensors(geometry, alpha.dtype)
    return _dipole_tensor(g, alpha, a)


def _dipole_tensor(g: TFGeometry, alpha: tf.Tensor, a: float | np.ndarray) -> tf.Tensor:
    lambda3, lambda5 = damping(g.r_cubed, alpha, a)
    eye3 = tf.eye(3, dtype=alpha.dtype)
    blocks = lambda5[..., None, None] * g.tensor_rr \
        - (lambda3 * g.tensor_identity)[..., None, None] * eye3
    n = tf.shape(alpha)[0]
    return tf.reshape(tf.transpose(blocks, (0, 2, 1, 3)), (3 * n, 3 * n))


def response(geometry: FrameGeometry | TFGeometry, charges: tf.Tensor, alpha: tf.Tensor,
             external_field: tf.Tensor | None = None, a: float | np.ndarray = THOLE_A) -> dict[str, tf.Tensor]:
    """Induced dipoles, dipoles and polarizabilities of one frame (differentiable in q and α).

    Parameters
    ----------
    geometry : FrameGeometry or TFGeometry
        Precomputed geometry of the frame.
    charges : tf.Tensor, shape (N,)
        Atomic charges in e.
    alpha : tf.Tensor, shape (N,)
        Isotropic atomic polarizabilities in Å³ (≥ 0); its dtype sets the computation dtype.
    external_field : tf.Tensor, shape (3,), optional
        Uniform applied field in e/Å².
    a : float or array_like, shape (N,)
        Thole damping parameter, global or per atom (pairs use ``min(a_i, a_j)``).

    Returns
    -------
    dict of str to tf.Tensor
        ``induced_dipoles`` (N, 3) e·Å, ``dipole`` (3,) e·Å, ``molecular_dipoles`` (M, 3) e·Å,
        ``atomic_polarizabilities`` (N, 3, 3) Å³, ``polarizability`` (3, 3) Å³,
        ``molecular_polarizabilities`` (M, 3, 3) Å³ — as :class:`polarff.response.Response`.
    """
    alpha = tf.convert_to_tensor(alpha)
    dtype = alpha.dtype
    charges = tf.cast(charges, dtype)
    g = _tensors(geometry, dtype)
    n = tf.shape(alpha)[0]
    lambda3, _ = damping(g.r_cubed, alpha, a)
    field = tf.einsum("ij,ijk,j->ik", lambda3, g.field_kernel, charges)
    if external_field is not None:
        field = field + tf.cast(external_field, dtype)[None, :]
    uniform = tf.tile(tf.eye(3, dtype=dtype), (n, 1))
    rhs = tf.concat([tf.reshape(field, (3 * n, 1)), uniform], axis=1)
    alpha3 = tf.repeat(alpha, 3)
    matrix = tf.eye(3 * n, dtype=dtype) - alpha3[:, None] * _dipole_tensor(g, alpha, a)
    solved = tf.linalg.solve(matrix, alpha3[:, None] * rhs)
    induced = tf.reshape(solved[:, 0], (n, 3))
    atomic_pol = tf.reshape(solved[:, 1:], (n, 3, 3))
    permanent = charges[:, None] * g.relative_positions
    return {
        "induced_dipoles": induced,
        "dipole": tf.linalg.matvec(g.dipole_positions, charges, transpose_a=True)
        + tf.reduce_sum(induced, axis=0),
        "molecular_dipoles": tf.matmul(g.membership, permanent + induced),
        "atomic_polarizabilities": atomic_pol,
        "polarizability": tf.reduce_sum(atomic_pol, axis=0),
        "molecular_polarizabilities": tf.einsum("mn,nab->mab", g.membership, atomic_pol),
    }


def induced_dipoles(geometry, charges, alpha, external_field=None, a: float | np.ndarray = THOLE_A) -> tf.Tensor:
    """Induced atomic dipoles (e·Å), shape (N, 3); see :func:`response`."""
    return response(geometry, charges, alpha, external_field, a)["induced_dipoles"]


def frame_dipole(geometry, charges, alpha, external_field=None, a: float | np.ndarray = THOLE_A) -> tf.Tensor:
    """Frame dipole (e·Å), shape (3,); see :func:`response`."""
    return response(geometry, charges, alpha, external_field, a)["dipole"]


def molecular_dipoles(geometry, charges, alpha, external_field=None, a: float | np.ndarray = THOLE_A) -> tf.Tensor:
    """Molecular dipoles (e·Å) about each molecule's first atom, shape (M, 3); see :func:`response`."""
    return response(geometry, charges, alpha, external_field, a)["molecular_dipoles"]


def frame_polarizability(geometry, alpha, a: float | np.ndarray = THOLE_A) -> tf.Tensor:
    """Frame polarizability (Å³), shape (3, 3)."""
    return _polarizability_response(geometry, alpha, a).sum_frame


def molecular_polarizabilities(geometry, alpha, a: float | np.ndarray = THOLE_A) -> tf.Tensor:
    """Row-sum molecular polarizabilities (Å³), shape (M, 3, 3)."""
    return _polarizability_response(geometry, alpha, a).per_molecule


class _Polarizability(NamedTuple):
    sum_frame: tf.Tensor
    per_molecule: tf.Tensor


def _polarizability_response(geometry, alpha, a: float | np.ndarray) -> _Polarizability:
    alpha = tf.convert_to_tensor(alpha)
    dtype = alpha.dtype
    g = _tensors(geometry, dtype)
    n = tf.shape(alpha)[0]
    alpha3 = tf.repeat(alpha, 3)
    matrix = tf.eye(3 * n, dtype=dtype) - alpha3[:, None] * _dipole_tensor(g, alpha, a)
    uniform = tf.tile(tf.eye(3, dtype=dtype), (n, 1))
    atomic_pol = tf.reshape(tf.linalg.solve(matrix, alpha3[:, None] * uniform), (n, 3, 3))
    return _Polarizability(tf.reduce_sum(atomic_pol, axis=0),
                           tf.einsum("mn,nab->mab", g.membership, atomic_pol))
