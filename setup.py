# The C core is built by cffi while pip installs the package; everything else is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["cext/ffi_build.py:ffibuilder"])
