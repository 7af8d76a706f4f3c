"""What every benchmark prints about the machine it ran on (the figures depend on it)."""

from __future__ import annotations


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what the platform says."""
    from fakescope.utils.memory import cpu_model as name

    return name()


def files_sha256(folder, skip: tuple[str, ...] = ()) -> str:
    """SHA-256 of every file under ``folder`` but those named in ``skip``: its path relative to ``folder``, its size
    and its bytes, in path order (two machines' benchmark data compared at a glance)."""
    import hashlib
    from pathlib import Path

    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in skip):
        digest.update(f"{path.relative_to(root).as_posix()}|{path.stat().st_size}|".encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
