"""Packing a model's arrays into three data containers gives each array back intact."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

from impactmodel.bayes.containers import PackedArrays


def _arrays(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {"count": np.asarray(float(n)), "index": rng.integers(0, 9, n),
            "flags": rng.integers(0, 2, (n, 2)).astype(bool),
            "moments": rng.normal(size=(n, 3, 3)), "values": rng.normal(size=n),
            "table": rng.integers(-5, 5, (n, 4)).astype(np.int32)}


def _unpacked(packed: PackedArrays) -> dict[str, np.ndarray]:
    with pm.Model():
        tensors = packed.tensors()
        return {name: tensor.eval() for name, tensor in tensors.items()}


def test_every_array_comes_back_with_its_shape_and_values():
    arrays = _arrays(np.random.default_rng(0), 7)
    packed = PackedArrays.pack(arrays)
    assert set(packed.values()) == {"packed_floats", "packed_integers", "packed_layout"}
    assert packed.floats.size == 1 + 7 * 9 + 7
    assert packed.integers.size == 7 + 7 * 2 + 7 * 4
    back = _unpacked(packed)
    for name, value in arrays.items():
        assert back[name].shape == value.shape, name
        np.testing.assert_array_equal(back[name], value.astype(back[name].dtype), name)
        assert (back[name].dtype.kind == "f") == (value.dtype.kind == "f"), name


def test_the_same_structure_with_other_sizes_swaps_in_without_rebuilding():
    rng = np.random.default_rng(1)
    small, large = PackedArrays.pack(_arrays(rng, 3)), PackedArrays.pack(_arrays(rng, 11))
    assert small.structure == large.structure
    with pm.Model() as model:
        tensors = small.tensors()
    with model:
        pm.set_data(large.values())
        back = {name: tensor.eval() for name, tensor in tensors.items()}
    assert back["moments"].shape == (11, 3, 3)
    np.testing.assert_array_equal(back["moments"], large.floats[1:1 + 99].reshape(11, 3, 3))
    assert back["count"] == 11.0


def test_arrays_that_are_not_numbers_are_refused():
    with pytest.raises(TypeError, match="'labels'"):
        PackedArrays.pack({"labels": np.array(["a", "b"])})


def test_integers_beyond_32_bits_are_refused():
    with pytest.raises(ValueError, match="'big'"):
        PackedArrays.pack({"big": np.array([0, 2**31])})
