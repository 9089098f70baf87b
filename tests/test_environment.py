"""The set-up delivers the stack the project targets, with a BLAS PyTensor can link."""

from __future__ import annotations

import sys
import warnings
from importlib.metadata import version

from packaging.version import Version


def test_python_and_key_versions():
    assert sys.version_info >= (3, 12)
    assert Version(version("pymc")) >= Version("6.0")
    assert Version(version("arviz")) >= Version("1.0")
    assert Version(version("nutpie")) >= Version("0.15")


def test_pytensor_links_to_blas_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import pytensor

        flags = pytensor.config.blas__ldflags
    assert "blas" in flags, f"PyTensor found no BLAS (blas__ldflags={flags!r})"
