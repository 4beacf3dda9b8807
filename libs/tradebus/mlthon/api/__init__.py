"""MLThon's API: the strategy interface (IStrategy) and the trading environment (IStratEnv)."""
