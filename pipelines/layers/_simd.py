"""LLVM vector IR pieces for the recurrent layers' compiled kernels (``_rnn_gemm``, ``_lstm_step``).

Why: numba cannot declare SIMD registers, and the kernels keep a block of gate pre-activations in
``<LANES x float>`` registers from the product straight into the gate arithmetic. ``Emit`` wraps an
intrinsic's ``(context, builder)``: array data pointers, vector loads and stores at element offsets,
broadcasts, ``fmuladd``, the product loop over ``k`` into vector accumulators, and ``tanh`` as
``_rnn_kernels.tanh32`` (Eigen's rational 13/6 approximation on [-7.905, 7.905], exactly +-1 beyond)
lane by lane; the division is marked ``fast`` (a reciprocal estimate and one Newton step).
numba's cache keys on the file of the compiled function only: after editing this module (or
``_rnn_gemm``'s kernel), touch ``_rnn_gemm.py``, ``_rnn_kernels.py`` and ``_lstm_step.py``.
"""

from __future__ import annotations

import llvmlite.binding as _llb
import numpy as np
from llvmlite import ir
from numba.core import cgutils

__all__ = ["LANES", "Emit"]

#: float32 lanes of the vectors: 16 with AVX-512, else 8 (LLVM splits them where the host has less)
LANES = 16 if _llb.get_host_cpu_features().get("avx512f") else 8

_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
           1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
_LIM = 7.90531110763549805


class Emit:
    """Vector IR helpers inside one intrinsic's ``codegen(context, builder, signature, args)``."""

    def __init__(self, context, builder, signature):
        self.context, self.b, self.sig = context, builder, signature
        self.vec = ir.VectorType(ir.FloatType(), LANES)
        self._fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(self.vec, [self.vec] * 3),
                                                   f"llvm.fmuladd.v{LANES}f32")

    def data(self, i, value):
        """The data pointer (``float*``) of the array passed as argument ``i``."""
        return self.context.make_array(self.sig.args[i])(self.context, self.b, value).data

    def int(self, n):
        return ir.Constant(ir.IntType(64), n)

    def at(self, ptr, *terms):
        """``&ptr[sum(terms)]`` as a vector pointer (``terms``: i64 values)."""
        index = terms[0]
        for term in terms[1:]:
            index = self.b.add(index, term)
        return self.b.bitcast(self.b.gep(ptr, [index]), self.vec.as_pointer())

    def load(self, ptr, *terms):
        return self.b.load(self.at(ptr, *terms), align=4)

    def store(self, value, ptr, *terms):
        self.b.store(value, self.at(ptr, *terms), align=4)

    def const(self, value):
        return ir.Constant(self.vec, [float(np.float32(value))] * LANES)

    def splat(self, scalar):
        undef = ir.Constant(self.vec, ir.Undefined)
        lane0 = self.b.insert_element(undef, scalar, ir.Constant(ir.IntType(32), 0))
        return self.b.shuffle_vector(lane0, undef, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))

    def fma(self, a, b, c):
        return self.b.call(self._fma, [a, b, c])

    def product(self, accs, src, off, ld, panels, poff, count):
        """``accs[b][g] += src[off + b * ld + k] * panels[poff + k * W + g * LANES:][:LANES]`` over
        ``k < count`` (``W = len(accs[0]) * LANES``): the product loop of a block, accumulators as allocas
        (promoted to registers)."""
        width = len(accs[0])
        with cgutils.for_range(self.b, count) as loop:
            k = loop.index
            base = self.b.add(poff, self.b.mul(k, self.int(width * LANES)))
            panel = [self.load(panels, base, self.int(g * LANES)) for g in range(width)]
            for row, acc in enumerate(accs):
                s = self.splat(self.b.load(self.b.gep(src, [self.b.add(self.b.add(
                    off, self.b.mul(self.int(row), ld)), k)])))
                for g in range(width):
                    self.b.store(self.fma(s, panel[g], self.b.load(acc[g])), acc[g])

    def accumulators(self, starts):
        """Allocas holding the vectors ``starts`` (one list per row)."""
        return [[cgutils.alloca_once_value(self.b, v) for v in row] for row in starts]

    def clamp(self, x, lo, hi):
        b = self.b
        x = b.select(b.fcmp_ordered(">", x, hi), hi, x)
        return b.select(b.fcmp_ordered("<", x, lo), lo, x)

    def tanh(self, x):
        """``_rnn_kernels.tanh32`` lane by lane."""
        b, lim, one = self.b, self.const(_LIM), self.const(1.0)
        v = self.clamp(x, b.fneg(lim), lim)
        x2 = b.fmul(v, v)
        p = self.const(_TANH_P[0])
        for coef in _TANH_P[1:]:
            p = self.fma(p, x2, self.const(coef))
        q = self.const(_TANH_Q[0])
        for coef in _TANH_Q[1:]:
            q = self.fma(q, x2, self.const(coef))
        r = b.fdiv(b.fmul(p, v), q, flags=("fast",))
        r = b.select(b.fcmp_ordered(">=", x, lim), one, r)
        return b.select(b.fcmp_ordered("<=", x, b.fneg(lim)), b.fneg(one), r)

    def sigmoid_of_double(self, x):
        """``sigmoid(2 x) = 0.5 * tanh(x) + 0.5``."""
        half = self.const(0.5)
        return self.fma(half, self.tanh(x), half)
