/* Tolerances of tradebus.engine.ledger (ledger.pyx's docstring says why each is what it is). */
#ifndef TRADEBUS_ENGINE_LEDGER_H
#define TRADEBUS_ENGINE_LEDGER_H

/* A position reduced to within this fraction of its size is flat. */
#define TB_FLAT_EPSILON 1e-9
/* Per-mark returns (fractions of the capital) whose root mean square is below this, and
   drawdowns below this fraction of the capital, are rounding noise of the equity arithmetic. */
#define TB_NOISE_RETURN 1e-12
/* A variance below this fraction of the mean square return is zero (rounding of the sums). */
#define TB_ZERO_VARIANCE 1e-12
/* x > best * peak * TB_NEAR is a cheap, safe pre-test for x / peak > best. */
#define TB_NEAR (1.0 - 1e-12)
/* Nanoseconds in a 365-day year: periods per year = TB_YEAR_NS / interval. */
#define TB_YEAR_NS (365.0 * 86400.0 * 1e9)

#endif /* TRADEBUS_ENGINE_LEDGER_H */
