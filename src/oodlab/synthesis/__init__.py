"""Virtual-outlier synthesis in feature space (NPOS, ASCOOD).

Each method lives in its own module (``synthesis/npos.py``, ``synthesis/ascood.py``); the
training recipes import what they need from there.
"""
