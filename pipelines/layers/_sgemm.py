"""``sgemm`` with ``beta`` that releases the GIL: SciPy's BLAS called from a compiled function.

Why: ``scipy.linalg.blas.sgemm`` (f2py) holds the GIL for the whole product (measured: a 1 ms
sleeper thread ticked once during a 0.26 s call, 192 times beside NumPy's ``matmul``). When a
batch runs in parts on two threads (``network.run_layers_split``), the per-tap products of
``_conv_taps`` then ran one thread at a time. NumPy's ``matmul`` releases the GIL but has no
``beta`` (accumulating into ``c``). Here the same BLAS routine (``scipy.linalg.cython_blas``'s
``sgemm``, the library ``scipy.linalg.blas`` wraps) is called by address from a numba ``nogil``
function (the address is an argument, so the compiled function is cached): same arguments, same
results, no GIL.
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import get_cython_function_address, intrinsic

__all__ = ["gemm_rows"]

def _address() -> int:
    return ctypes.cast(get_cython_function_address("scipy.linalg.cython_blas", "sgemm"), ctypes.c_void_p).value


_ADDRESS = _address()


@intrinsic
def _call13(typingctx, address, args):
    """Call the C function at ``address`` (an integer, so the compiled caller can be cached) with 13
    pointer arguments given as integers."""
    sig = types.void(address, args)

    def codegen(context, builder, signature, llargs):
        i8p = ir.IntType(8).as_pointer()
        fn = builder.inttoptr(llargs[0], ir.FunctionType(ir.VoidType(), [i8p] * 13).as_pointer())
        builder.call(fn, [builder.inttoptr(builder.extract_value(llargs[1], i), i8p) for i in range(13)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def _gemm(address, a, b, c, beta):
    """Row-major ``c = a @ b + beta * c`` as column-major ``c^T = b^T a^T + beta c^T`` (Fortran arguments
    by reference: sizes, leading dimensions and scalars in small arrays)."""
    m, k = a.shape
    n = b.shape[1]
    ints = np.empty(6, np.int32)
    ints[0], ints[1], ints[2] = n, m, k  # sizes of c^T [n, m]: M = n, N = m, K = k
    ints[3], ints[4], ints[5] = b.strides[0] // 4, a.strides[0] // 4, c.strides[0] // 4
    scal = np.empty(2, np.float32)
    scal[0], scal[1] = 1.0, beta
    trans = np.empty(1, np.uint8)
    trans[0] = 78  # "N"
    pi, ps, pt = ints.ctypes.data, scal.ctypes.data, trans.ctypes.data
    _call13(address, (pt, pt, pi, pi + 4, pi + 8, ps, b.ctypes.data, pi + 12, a.ctypes.data, pi + 16, ps + 4,
                      c.ctypes.data, pi + 20))


def gemm_rows(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float) -> None:
    """``c = a @ b + beta * c`` in place, float32; ``a`` ``[M, K]``, ``b`` ``[K, N]``, ``c`` ``[M, N]``, each with
    unit stride along its rows (any row stride), GIL released."""
    if not (a.strides[1] == b.strides[1] == c.strides[1] == 4 and a.dtype == b.dtype == c.dtype == np.float32
            and a.shape[1] == b.shape[0] and c.shape == (a.shape[0], b.shape[1])):
        raise ValueError(f"gemm_rows takes float32 row-major operands, got {a.shape} @ {b.shape} -> {c.shape}")
    if a.shape[0] and b.shape[1]:
        _gemm(_ADDRESS, a, b, c, np.float32(beta))
