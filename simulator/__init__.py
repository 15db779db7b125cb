"""mlarch simulator: SimPy control plane and vectorised data plane running the real pipeline."""
