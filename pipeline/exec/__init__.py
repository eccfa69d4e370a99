"""How stages spread work: the local process pool and the Ray actor pool."""
