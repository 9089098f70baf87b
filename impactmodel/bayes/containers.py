"""A model's data arrays packed into three ``pm.Data`` containers.

nutpie hands each data container to the compiled log-density through a generated
extraction step whose compile time grows faster than linearly with the number of
containers: with the scale-score model's 25 containers it took about 13 of the 23 seconds
of a cold compile. Packing every float array into one vector, every integer array into
another, and their offsets and shapes into a third keeps that step small whatever the
model holds, while a second dataset of the same structure still swaps in without a
compile (:meth:`PackedArrays.values`: same containers, new contents).

Inside the model, :meth:`PackedArrays.tensors` gives each array back by name, sliced from
its container and reshaped with the sizes read from the layout container, so sizes may
change from one dataset to the next; the names, ranks and kinds (float or integer) are
part of the model's structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from numpy.typing import NDArray

#: names of the three containers
FLOATS, INTEGERS, LAYOUT = "packed_floats", "packed_integers", "packed_layout"


@dataclass(frozen=True)
class PackedArrays:
    """Named arrays packed into a float vector, an integer vector and a layout vector.

    Attributes
    ----------
    names : tuple of str
        The arrays, in packing order.
    ranks : tuple of int
    integer : tuple of bool
        Whether each array is packed with the integers (else with the floats).
    floats : ndarray of float64
    integers : ndarray of int64
    layout : ndarray of int64
        Per array: its offset in its container, then its shape, padded to the largest
        rank (``1 + max rank`` entries per array).
    """

    names: tuple[str, ...]
    ranks: tuple[int, ...]
    integer: tuple[bool, ...]
    floats: NDArray[np.float64]
    integers: NDArray[np.int64]
    layout: NDArray[np.int64]

    @classmethod
    def pack(cls, arrays: dict[str, np.ndarray]) -> PackedArrays:
        """Pack ``arrays`` (integer or float, any rank; bool arrays count as integers)."""
        names = tuple(arrays)
        values = [np.asarray(arrays[n]) for n in names]
        for name, value in zip(names, values, strict=True):
            if value.dtype.kind not in "biuf":
                raise TypeError(f"cannot pack {name!r} of dtype {value.dtype}")
        integer = tuple(v.dtype.kind in "biu" for v in values)
        limit = np.iinfo(np.int32)
        for name, value, is_int in zip(names, values, integer, strict=True):
            # pm.Data holds integers as int32
            if is_int and value.size and (value.min() < limit.min or value.max() > limit.max):
                raise ValueError(f"{name!r} has integers outside the 32-bit range")
        width = 1 + max((v.ndim for v in values), default=0)
        layout = np.zeros((len(values), width), dtype=np.int64)
        offsets = {True: 0, False: 0}
        for row, (value, is_int) in enumerate(zip(values, integer, strict=True)):
            layout[row, 0] = offsets[is_int]
            layout[row, 1:1 + value.ndim] = value.shape
            offsets[is_int] += value.size
        if max(offsets.values()) > limit.max:  # the layout is held as int32 too
            raise ValueError("the packed arrays hold more than 2**31 - 1 values of one kind")
        def joined(kind: bool, dtype: type) -> np.ndarray:
            parts = [v.ravel() for v, k in zip(values, integer, strict=True) if k == kind]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
        return cls(names=names, ranks=tuple(v.ndim for v in values), integer=integer,
                   floats=joined(False, np.float64), integers=joined(True, np.int64),
                   layout=layout.ravel())

    @property
    def structure(self) -> tuple[tuple[str, int, bool], ...]:
        """What a compiled model depends on: names, ranks and kinds, not sizes."""
        return tuple(zip(self.names, self.ranks, self.integer, strict=True))

    def values(self) -> dict[str, np.ndarray]:
        """Return the containers' contents by container name (for ``BuiltModel.data``)."""
        return {FLOATS: self.floats, INTEGERS: self.integers, LAYOUT: self.layout}

    def tensors(self) -> dict[str, pt.TensorVariable]:
        """Create the three ``pm.Data`` containers (in the current model) and unpack.

        Returns
        -------
        dict of str to TensorVariable
            Each packed array by its name, with its rank and kind.
        """
        floats = pm.Data(FLOATS, self.floats)
        integers = pm.Data(INTEGERS, self.integers)
        layout = pm.Data(LAYOUT, self.layout)
        width = 1 + max(self.ranks, default=0)
        out: dict[str, pt.TensorVariable] = {}
        for row, (name, rank, is_int) in enumerate(self.structure):
            container, base = (integers if is_int else floats), row * width
            start = layout[base]
            if rank == 0:
                out[name] = container[start]
                continue
            shape = [layout[base + 1 + k] for k in range(rank)]
            flat = container[start:start + pt.prod(pt.stack(shape))]
            out[name] = flat if rank == 1 else flat.reshape(shape, ndim=rank)
        return out
