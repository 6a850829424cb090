"""The compiled extensions: every ``tracecore/_speedups/*.pyx``, one module each.

Everything else about the package is in pyproject.toml. The extensions are optional: where one
cannot be built (no C compiler, no headers) the install goes on without it and the code uses
its pure-Python reference (see ``tracecore._speedups``). A module names the C libraries it
links in its own header (``# distutils: libraries = ...``).
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

_SOURCES = sorted(Path("tracecore/_speedups").glob("*.pyx"))

_EXTENSIONS = cythonize(
    [Extension(f"tracecore._speedups.{source.stem}", [str(source)], extra_compile_args=["-O3"])
     for source in _SOURCES],
    compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False,
                         "cdivision": True},
)
for _extension in _EXTENSIONS:
    # Set after cythonize, which makes new Extension objects without this flag.
    _extension.optional = True

setup(ext_modules=_EXTENSIONS)
