"""Several processes for ``detect`` and ``eval``: launched by Lightning Fabric, the engine training runs on.

``--devices N --num-nodes M`` starts (or joins) a group of ``N x M`` processes. Fabric finds how it was launched,
as the trainer does: under ``torchrun`` or ``srun`` it joins the processes those started; alone it starts the
other ``N - 1`` processes of its machine itself (the same command line again). Each process scores a disjoint
shard of the inputs and process 0 merges; :class:`Ranks` is what the scoring code needs to know of that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from fakescope.errors import ConfigError

_LAUNCHER_VARS = ("WORLD_SIZE", "SLURM_NTASKS")


@dataclass
class Ranks:
    """This process's place in the group: ``rank`` of ``world``; ``device`` is the one it scores on."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"
    fabric: Any = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def owns(self, index, block: int = 1):
        """Whether input number ``index`` is this process's (elementwise for an array of numbers): blocks of
        ``block`` consecutive inputs are dealt in turn, so every process sees whole batches, as one process
        would."""
        return (index // block) % self.world == self.rank

    def barrier(self) -> None:
        if self.fabric is not None:
            self.fabric.barrier()

    def gather_object(self, obj: Any) -> list[Any]:
        """``obj`` of every process, in rank order (on every process)."""
        if self.fabric is None:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def launch(devices: int = 1, num_nodes: int = 1, device: str | None = "auto") -> Ranks:
    """Join or start the processes of ``devices x num_nodes``; one process (the default) starts nothing.

    ``device``: ``auto`` uses GPUs where there are any (one per process), else CPU processes (gloo).
    """
    if devices < 1 or num_nodes < 1:
        raise ConfigError(f"--devices and --num-nodes must be at least 1, got {devices} and {num_nodes}")
    if devices * num_nodes == 1:
        if any(int(os.environ.get(v, "1") or 1) > 1 for v in _LAUNCHER_VARS):
            raise ConfigError("started by a launcher with several processes (torchrun, srun) but --devices is 1: "
                              "give --devices (processes per machine) and --num-nodes (machines) to match it")
        return Ranks(device="auto" if device in (None, "auto") else device)
    import torch
    from lightning.fabric import Fabric

    accelerator = "cpu"
    if device in (None, "auto"):
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    elif str(device).startswith("cuda"):
        accelerator = "cuda"
    elif device != "cpu":
        raise ConfigError(f"--device {device} with --devices {devices}: give cpu, cuda or auto (each process "
                          "takes its own GPU)")
    try:
        fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp")
        fabric.launch()
    except (ValueError, RuntimeError) as exc:  # e.g. --devices that do not match what torchrun/srun started
        raise ConfigError(f"cannot start or join {devices} x {num_nodes} processes: {exc}") from None
    return Ranks(rank=fabric.global_rank, world=fabric.world_size, device=str(fabric.device), fabric=fabric)
