# cython: language_level=3
def compiled() -> bool:
    return True
