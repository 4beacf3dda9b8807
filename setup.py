"""Cython extensions of tradebus.engine; everything else is declared in pyproject.toml.

Every ``libs/tradebus/engine/*.pyx`` becomes ``tradebus.engine.<name>``, compiled with -O3 and
OpenMP so ``prange`` batches use all cores; the engine's C kernels are headers in
``libs/tradebus/engine/include`` (shipped as package data, so an sdist builds too). Compiler
directives live here, in one place.
"""
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import find_namespace_packages, setup
from setuptools.extension import Extension

ROOT = Path(__file__).parent
ENGINE = ROOT / "libs" / "tradebus" / "engine"
INCLUDE = ENGINE / "include"

extensions = [
    Extension(
        f"tradebus.engine.{pyx.stem}",
        [str(pyx.relative_to(ROOT))],
        include_dirs=[str(INCLUDE.relative_to(ROOT)), numpy.get_include()],
        depends=[str(h.relative_to(ROOT)) for h in sorted(INCLUDE.glob("*.h"))],
        extra_compile_args=["-O3", "-fopenmp"],
        extra_link_args=["-fopenmp"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for pyx in sorted(ENGINE.glob("*.pyx"))
]

packages = (
    ["tradebus"]
    + [f"tradebus.{p}" for p in find_namespace_packages("libs/tradebus", exclude=["*__pycache__*"])]
    + ["tradebus.proto"]
    + [f"tradebus.proto.{p}" for p in find_namespace_packages("proto/tradebus/proto", exclude=["*__pycache__*"])]
    + ["tradebus.services"]
    + [f"tradebus.services.{p}" for p in find_namespace_packages("services", exclude=["*__pycache__*"])]
)

setup(
    packages=packages,
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        include_path=[str(ROOT / "libs")],
    ),
)
