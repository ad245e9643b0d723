"""Build the Cython kernels.

MSQ_DEBUG=1 turns on bounds checks, line tracing and annotated HTML; otherwise the
kernels build with the fixed fast directive set below.
"""
import glob
import os

from setuptools import Extension, setup
from Cython.Build import cythonize

DEBUG = os.environ.get("MSQ_DEBUG") == "1"

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}
if DEBUG:
    DIRECTIVES["linetrace"] = True

macros = [("CYTHON_TRACE_NOGIL", "1")] if DEBUG else []

extensions = [
    Extension(
        path[:-4].replace(os.sep, "."),
        [path],
        define_macros=macros,
        extra_compile_args=["-O3"],
    )
    for path in sorted(glob.glob(os.path.join("msqcore", "**", "*.pyx"), recursive=True))
]

print(f"msqcore: accelerated build of {len(extensions)} Cython modules" + (" (debug)" if DEBUG else ""))

setup(
    packages=["msqcore", "msqcore.kernels", "msqcore.storage", "msqcore.planner",
              "msqcore.engine", "msqcore.inputs", "msqcore.server"],
    package_dir={"msqcore.server": "server"},
    ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES, annotate=DEBUG),
    package_data={"msqcore": ["py.typed"], "msqcore.kernels": ["*.pyi", "*.pxd"]},
)
