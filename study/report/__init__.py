"""Tables and figures for the notebooks and ``paper/`` (seaborn)."""
