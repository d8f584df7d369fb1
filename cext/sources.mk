# The C core's sources and compiler flags: included by the Makefile and read by cext/ffi_build.py
# (which understands only `NAME := words` lines), so the library and the Python extension are built
# from the same list with the same flags.
#
# C11 + OpenMP, warnings on; never fast-math flags: the core must stay comparable with the reference.
# -fno-math-errno changes no result (nothing here reads errno after a math function); it lets sqrtf
# vectorize. -fvisibility=hidden: only what minrnn.h declares is exported. -fno-wrapv: Python's own
# CFLAGS, which the extension's build puts first, carry -fwrapv, and with wrapping int indices GCC
# vectorized none of the cells' loops (the LSTM step ran scalar, in the Python extension only).
CORE_NAMES := core model seq2seq translate cells optim sample generate gemm int8 checkpoint
CORE_CFLAGS := -std=c11 -O2 -Wall -Wextra -fno-math-errno -fno-wrapv -fvisibility=hidden
OPENMP_FLAGS := -fopenmp
# without OpenMP (make test-serial): the omp simd loops still vectorize; a parameter that only sizes
# an OpenMP team (num_threads) is unused there, and nothing else may warn
SERIAL_FLAGS := -fopenmp-simd -Wno-unused-parameter
