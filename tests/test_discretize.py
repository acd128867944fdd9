"""Per-species binning: exact class↔value round trip, two-hot expectations, JSON round trip."""

from __future__ import annotations

import json

import numpy as np

from polarff.discretize import Binning, fit_binning


def make(seed=0):
    rng = np.random.default_rng(seed)
    species = rng.integers(0, 3, 4000)
    values = np.where(species == 0, -0.7, 0.35) + 0.04 * rng.normal(size=4000)
    values[species == 2] = 0.95  # a species with a single value
    return species, values, fit_binning("charges", ["O", "H", "Na"], species, values, n_bins=16)


def test_class_value_round_trip_is_exact():
    _, _, b = make()
    for s in range(3):
        k = np.arange(int(b.valid[s].sum()))
        centres = b.class_to_value(np.full(len(k), s), k)
        assert np.array_equal(b.value_to_class(np.full(len(k), s), centres), k)
        assert np.all(np.diff(centres) > 0)
    assert b.valid.sum(axis=1).tolist() == [16, 16, 1]


def test_centres_lie_in_their_bins_and_values_map_to_bins():
    species, values, b = make(1)
    cls = b.value_to_class(species, values)
    for s in (0, 1):
        sel = species == s
        e = b.edges[s]
        assert np.all(values[sel] >= e[cls[sel]] - 1e-12)
        inner = cls[sel] < b.valid[s].sum() - 1
        assert np.all(values[sel][inner] < e[cls[sel][inner] + 1])


def test_two_hot_expectation_reproduces_values():
    species, values, b = make(2)
    t = b.two_hot(species, values)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    expected = np.sum(t * b.centres[species], axis=1)
    lo, hi = b.centres[species, 0], b.centres[species, b.valid.sum(axis=1)[species] - 1]
    np.testing.assert_allclose(expected, np.clip(values, lo, hi), atol=1e-12)
    assert np.all(t[:, ~b.valid[0]][species == 0] == 0)


def test_json_round_trip_is_exact():
    _, _, b = make(3)
    back = Binning.from_dict(json.loads(json.dumps(b.to_dict())))
    assert np.array_equal(back.centres, b.centres) and np.array_equal(back.edges, b.edges)
    assert np.array_equal(back.valid, b.valid) and back.species == b.species
