"""sim_exchange: a local Binance spot + USD-M venue that unmodified ccxt and ccxt.pro trade against.

``SimExchange`` (server.py) runs it, ``point_ccxt_at_sim`` (client.py) aims a ccxt instance at it,
``running_sim`` (testing.py) is the test fixture.
"""
