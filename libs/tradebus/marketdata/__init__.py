"""Market-data building blocks: ccxt -> proto normalisers, book deltas, replay and recording."""
