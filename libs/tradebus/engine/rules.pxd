# Signal-rule evaluator (rules.pyx), cimported by fused.pyx.
from libc.stdint cimport int32_t, int64_t, uint8_t

from tradebus.engine.fills cimport Signal

cdef enum:
    N_PRICES = 5            # columns 0..4: open, high, low, close, volume

# One instruction of a program (INSTR_DTYPE in rules.pyx; rule_program.Program writes them).
cdef struct Instr:
    int32_t op
    int32_t dst             # column (number instructions) or condition slot
    int32_t a
    int32_t b
    int32_t c
    int32_t level           # number instructions: 0 reads prices only, k reads level < k
    double p0
    double p1
    double p2

# One point of a program: its conditions and how it trades.
cdef struct PointView:
    const Instr* conditions
    int64_t n_conditions
    int32_t sides[4]        # slots of entry_long, exit_long, entry_short, exit_short (-1: none)
    int32_t order_type
    double offset           # offset_bps / 10^4
    double quantity


cdef class CompiledProgram:
    cdef readonly object program          # the rule_program.Program
    cdef object _numbers, _conditions      # INSTR_DTYPE arrays the views point into
    cdef PointView* points
    cdef readonly int64_t n_points
    cdef const Instr* numbers
    cdef readonly int64_t n_numbers
    cdef readonly int64_t n_columns
    cdef readonly int64_t max_period
    cdef readonly int64_t max_conditions
    cdef readonly int32_t n_levels


cdef int eval_number(const Instr* ins, double** cols, int64_t n, double* ring) noexcept nogil
cdef void eval_numbers(const Instr* ins, int64_t count, double** cols, int64_t n, double* ring) noexcept nogil
cdef void eval_point(const PointView* p, double** cols, uint8_t* slots, int64_t n) noexcept nogil
cdef int64_t emit_signals(const PointView* p, const uint8_t* slots, const int64_t* ts,
                          const double* close, int64_t n, Signal* out, int64_t* bars) noexcept nogil
