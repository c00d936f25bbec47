"""Pulse engines: how desired updates become pulses, and applying them."""

from .base import PulseEngine, PulseStats, apply_pulse_counts, clamp_to_bounds, outer_delta, pulse_step
from .deterministic import DeterministicEngine
from .expected import ExpectedEngine
from .stochastic import StochasticEngine

ENGINES = {"expected": ExpectedEngine, "stochastic": StochasticEngine, "deterministic": DeterministicEngine}


def make_engine(engine, **kwargs) -> PulseEngine:
    """An engine from its name ("expected", "stochastic", "deterministic") or an instance."""
    if isinstance(engine, PulseEngine):
        return engine
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {sorted(ENGINES)} or a PulseEngine, got {engine!r}")
    return ENGINES[engine](**kwargs)


__all__ = ["ENGINES", "DeterministicEngine", "ExpectedEngine", "PulseEngine", "PulseStats", "StochasticEngine",
           "apply_pulse_counts", "clamp_to_bounds", "make_engine", "outer_delta", "pulse_step"]
