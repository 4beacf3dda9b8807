"""Market-data building blocks: ccxt -> proto normalisers, book deltas, backoff, replay and recording."""
