"""Builds the optional compiled twin of the SLA engine's hot path (``worker/sla/_speedups.pyx``).

Everything else about the package is in pyproject.toml. The extension is optional: without a C
compiler, or with ``SLA_WORKER_NO_EXTENSIONS=1``, the install still succeeds and the pure-Python
engine runs (about 40,000 instead of 150,000 leads/s). The source's SHA-256 is compiled in so
that the tests can tell a stale build from a fresh one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from setuptools import Extension, setup

SOURCE = Path("worker/sla/_speedups.pyx")


def extensions() -> list[Extension]:
    if os.environ.get("SLA_WORKER_NO_EXTENSIONS"):
        return []
    from Cython.Build import cythonize

    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    extension = Extension(
        "worker.sla._speedups",
        [str(SOURCE)],
        define_macros=[("SLA_SPEEDUPS_SOURCE_SHA", f'"{digest}"')],
        optional=True,
    )
    built = cythonize([extension], compiler_directives={"language_level": "3"}, quiet=True)
    for item in built:
        item.optional = True  # cythonize's copies drop the flag
    return built


setup(ext_modules=extensions())
