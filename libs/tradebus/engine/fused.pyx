"""The fused study pipeline: permuted paths or parameter points, each one's indicators, rule and
backtest inside one ``prange``, with no Python and no allocation per path.

Permutations (``permutation_stats``): per path, in one thread's scratch buffers, the path is
shuffled and built (paths.pyx), its block summaries made (bars.pyx), the program's number
columns and conditions evaluated and its signals emitted (rules.pyx), and the engine's run
(batch.pyx) writes the statistics row. Path i is stream ``streams[i]`` of ``seeds[i]``, the
same path ``permutation_paths`` yields, so the results equal running the Engine on those
paths and the rule's signals, row for row.

Sweeps (``sweep_stats``): the program's number columns (every distinct indicator of every
point) are computed once over the real bars, independent ones in parallel; then per point, in
parallel, its conditions, signals and run.
"""
from cython.parallel cimport parallel, prange
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from posix.time cimport CLOCK_THREAD_CPUTIME_ID, clock_gettime, timespec

cimport numpy as cnp
cimport openmp

from tradebus.engine.bars cimport BlockStats, Bars, Instrument, summarise_columns
from tradebus.engine.batch cimport Engine, Outcome, outcome_dicts, run_bars
from tradebus.engine.fills cimport ORDER_MARKET, SIG_NO_MEMORY, Config, Event, Signal
from tradebus.engine.paths cimport PathSource, PathView, make_closes, make_path, tb_permutation
from tradebus.engine.rules cimport (
    N_PRICES, CompiledProgram, Instr, PointView, emit_signals, eval_number, eval_numbers, eval_point,
)

import numpy as np

cnp.import_array()

__all__ = ["STAGES", "permutation_stats", "sweep_stats"]


# Per-thread buffers: allocated once per thread and batch, reused for every path or point.
cdef struct Scratch:
    uint32_t* order
    double* columns         # the path's open, high, low, close, volume, then number columns
    double** cols
    BlockStats* blocks      # nblocks, then nsupers
    double* ring
    uint8_t* slots
    Signal* signals
    int64_t* bars           # the bar of each signal
    Event* events


cdef Scratch* scratch_new(int64_t n, int64_t n_columns, int64_t n_owned, int64_t n_blocks,
                          int64_t max_period, int64_t max_conditions, bint path) noexcept nogil:
    """One thread's buffers (``n_owned`` columns of n doubles; a path's order and block
    summaries when ``path``), or NULL when out of memory."""
    cdef Scratch* s = <Scratch*>malloc(sizeof(Scratch))
    if s == NULL:
        return NULL
    s.order = <uint32_t*>malloc((n if path else 1) * sizeof(uint32_t))
    s.columns = <double*>malloc((n_owned * n + 1) * sizeof(double))
    s.cols = <double**>malloc(n_columns * sizeof(double*))
    s.blocks = <BlockStats*>malloc((n_blocks if path else 1) * sizeof(BlockStats))
    s.ring = <double*>malloc(2 * max_period * sizeof(double))
    s.slots = <uint8_t*>malloc(max_conditions * n + 1)
    s.signals = <Signal*>malloc((2 * n + 1) * sizeof(Signal))
    s.events = <Event*>malloc((2 * n + 1) * sizeof(Event))
    s.bars = <int64_t*>malloc((2 * n + 1) * sizeof(int64_t))
    if (s.order == NULL or s.columns == NULL or s.cols == NULL or s.blocks == NULL or s.ring == NULL
            or s.slots == NULL or s.signals == NULL or s.events == NULL or s.bars == NULL):
        scratch_free(s)
        return NULL
    return s


cdef void scratch_free(Scratch* s) noexcept nogil:
    if s == NULL:
        return
    free(s.order)
    free(s.columns)
    free(s.cols)
    free(s.blocks)
    free(s.ring)
    free(s.slots)
    free(s.signals)
    free(s.events)
    free(s.bars)
    free(s)


cdef inline double cpu_now() noexcept nogil:
    """This thread's CPU seconds (stage timings stay honest on a busy machine)."""
    cdef timespec ts
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


STAGES = ("shuffle", "path", "summaries", "indicators", "signals", "engine")


cdef void permuted_run(const Bars* real, const PathView* src, const Instr* numbers,
                       int64_t n_numbers, const PointView* point, int64_t n_columns,
                       bint ranges, bint volume, bint opens, Scratch* s, uint64_t seed, uint64_t stream,
                       const Config* cfg, bint on_real, Outcome* out, double* seconds) noexcept nogil:
    """One permuted path: build it, evaluate the rule on it, run the engine (on the path, or
    on the real bars when ``on_real``) into ``out``; the time of each of the STAGES into
    ``seconds``. Without ``ranges`` (market orders, no rule reading highs or lows) the path's
    highs and lows are not made; without ``volume`` its volumes are not."""
    cdef int64_t n = real.n, k, m, b
    cdef Bars path = real[0]
    # lean: market orders and a rule reading closes only: the path needs its closes and the
    # opens its fills are priced at, nothing else
    cdef bint lean = not ranges and not volume and not opens and not on_real
    cdef double* col = s.columns
    cdef double t0 = cpu_now(), t1
    for k in range(n_columns):
        s.cols[k] = col + k * n
    if not ranges:                             # never read: any valid pointers
        s.cols[1] = s.cols[3]
        s.cols[2] = s.cols[3]
    if not volume:
        s.cols[4] = s.cols[3]
    tb_permutation(s.order, n - 1, seed, stream)
    t1 = cpu_now()
    seconds[0] = t1 - t0
    if lean:
        make_closes(src, s.order, s.cols[3])
    else:
        make_path(src, s.order, s.cols[0], s.cols[1] if ranges else NULL, s.cols[2] if ranges else NULL,
                  s.cols[3], s.cols[4] if volume else NULL)
    path.open = s.cols[0]
    path.high = s.cols[1]
    path.low = s.cols[2]
    path.close = s.cols[3]
    t0 = cpu_now()
    seconds[1] = t0 - t1
    if not on_real:
        summarise_columns(&path, s.blocks, s.blocks + path.nblocks, ranges)
    t1 = cpu_now()
    seconds[2] = t1 - t0
    eval_numbers(numbers, n_numbers, s.cols, n, s.ring)
    t0 = cpu_now()
    seconds[3] = t0 - t1
    eval_point(point, s.cols, s.slots, n)
    m = emit_signals(point, s.slots, real.ts, s.cols[3], n, s.signals, s.bars)
    if lean:                                   # market orders read the opens they fill at only
        for k in range(m):
            b = s.bars[k] + 1
            if b < n:
                s.cols[0][b] = s.cols[3][b] * src.moves[s.order[b - 1]].open
    t1 = cpu_now()
    seconds[4] = t1 - t0
    run_bars(real if on_real else &path, s.signals, m, cfg, s.events, out, NULL, NULL)
    seconds[5] = cpu_now() - t1


cdef int nthreads_for(int threads, int64_t items) noexcept:
    cdef int t = threads if threads > 0 else openmp.omp_get_max_threads()
    if t > items:
        t = <int>items
    return t if t > 0 else 1


def permutation_stats(Engine engine, PathSource source, CompiledProgram program, seeds, streams,
                      bint on_real=False, int threads=0, dict timings=None):
    """Statistics of the program's point 0 on path streams[i] of seeds[i], for each i, run
    with ``engine``'s settings on the path (or on the real bars when ``on_real``: FLOX's
    "signals" mode). Returns one statistics dict per path. Given a dict, ``timings`` gets the
    thread CPU seconds spent in each of the STAGES, summed over the paths."""
    cdef const uint64_t[::1] seedv = np.ascontiguousarray(seeds, dtype=np.uint64)
    cdef const uint64_t[::1] streamv = np.ascontiguousarray(streams, dtype=np.uint64)
    cdef int64_t count = seedv.shape[0], i
    if streamv.shape[0] != count:
        raise ValueError("seeds and streams differ in length")
    if program.n_points != 1:
        raise ValueError("a permutation test runs one parameter point")
    cdef Instrument inst = <Instrument>source.instrument
    cdef const Bars* real = &inst.view
    cdef const PathView* src = &source.view
    cdef int64_t n = real.n
    cdef int64_t n_blocks = real.nblocks + real.nsupers
    cdef const Config* cfg = &engine.cfg
    cdef const Instr* numbers = program.numbers
    cdef int64_t n_numbers = program.n_numbers, n_columns = program.n_columns
    cdef int64_t max_period = program.max_period, max_conditions = program.max_conditions
    cdef const PointView* point = &program.points[0]
    cdef bint volume = program.reads(4)
    cdef bint opens = program.reads(0)
    cdef bint ranges = point.order_type != ORDER_MARKET or program.reads(1) or program.reads(2)
    cdef int nthreads = nthreads_for(threads, count)
    cdef Scratch* s = NULL
    if count == 0:
        return []
    if n < 2:
        raise ValueError("a permutation needs at least 2 bars")
    cdef Outcome* results = <Outcome*>malloc(count * sizeof(Outcome))
    seconds = np.zeros((count, len(STAGES)))
    cdef double[:, ::1] secv = seconds
    if results == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=nthreads):
            s = scratch_new(n, n_columns, n_columns, n_blocks, max_period, max_conditions, True)
            for i in prange(count, schedule="dynamic", chunksize=1):
                if s == NULL:
                    results[i].error_code = SIG_NO_MEMORY
                    results[i].error_row = -1
                else:
                    permuted_run(real, src, numbers, n_numbers, point, n_columns, ranges, volume, opens, s,
                                 seedv[i], streamv[i], cfg, on_real, &results[i], &secv[i, 0])
            scratch_free(s)
        if timings is not None:
            timings.update(zip(STAGES, seconds.sum(axis=0).tolist()))
        return outcome_dicts(results, count, "path")
    finally:
        free(results)


def sweep_stats(Engine engine, Instrument inst, CompiledProgram program, int threads=0):
    """Statistics of every point of ``program`` on ``inst``'s bars with ``engine``'s settings:
    the number columns once (independent ones in parallel), then the points in parallel."""
    cdef const Bars* bars = &inst.view
    cdef int64_t n = bars.n, i, k, m, n_points = program.n_points
    cdef int64_t n_columns = program.n_columns, n_numbers = program.n_numbers
    cdef int64_t max_period = program.max_period, max_conditions = program.max_conditions
    cdef const Config* cfg = &engine.cfg
    cdef const Instr* numbers = program.numbers
    cdef int nthreads = nthreads_for(threads, max(n_points, n_numbers))
    cdef int32_t level
    cdef Scratch* s = NULL
    cdef double* ring = NULL
    cdef const double[::1] volv = inst.volume
    columns = np.empty((max(n_columns - N_PRICES, 1), n))
    cdef double[:, ::1] colv = columns
    cdef double** cols = <double**>malloc(n_columns * sizeof(double*))
    cdef Outcome* results = <Outcome*>malloc(max(n_points, 1) * sizeof(Outcome))
    cdef int failed = 0
    if cols == NULL or results == NULL:
        free(cols)
        free(results)
        raise MemoryError()
    try:
        cols[0] = <double*>bars.open
        cols[1] = <double*>bars.high
        cols[2] = <double*>bars.low
        cols[3] = <double*>bars.close
        cols[4] = <double*>&volv[0]
        for k in range(N_PRICES, n_columns):
            cols[k] = &colv[k - N_PRICES, 0]
        with nogil:
            for level in range(program.n_levels):
                with parallel(num_threads=nthreads):
                    ring = <double*>malloc(2 * max_period * sizeof(double))
                    for k in prange(n_numbers, schedule="dynamic", chunksize=1):
                        if numbers[k].level == level:
                            if ring == NULL:
                                failed += 1
                            else:
                                eval_number(&numbers[k], cols, n, ring)
                    free(ring)
            if not failed:
                with parallel(num_threads=nthreads):
                    s = scratch_new(n, n_columns, 0, 0, 1, max_conditions, False)
                    for i in prange(n_points, schedule="dynamic", chunksize=1):
                        if s == NULL:
                            results[i].error_code = SIG_NO_MEMORY
                            results[i].error_row = -1
                        else:
                            eval_point(&program.points[i], cols, s.slots, n)
                            m = emit_signals(&program.points[i], s.slots, bars.ts, bars.close, n, s.signals, NULL)
                            run_bars(bars, s.signals, m, cfg, s.events, &results[i], NULL, NULL)
                    scratch_free(s)
        if failed:
            raise MemoryError()
        return outcome_dicts(results, n_points, "point")
    finally:
        free(cols)
        free(results)
