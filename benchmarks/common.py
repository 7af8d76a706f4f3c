"""What every benchmark prints about the machine it ran on (the figures depend on it)."""

from __future__ import annotations


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what the platform says."""
    from fakescope.utils.memory import cpu_model as name

    return name()
