"""The built-in synthetic detector: a stand-in for simulation + Marlin where iLCSoft is absent.

Model, synthetic samples, analytic fixed points and the built-in reconstruction live here, apart
from ``Worker/``, which holds only what runs on a grid node.
"""
