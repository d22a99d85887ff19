"""Several processes when launched by torchrun: training (DistributedDataParallel) and
super-resolution (each process predicts its share of the tiles; rank 0 writes the files).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything runs in one
process. CUDA processes use NCCL and one GPU each; CPU processes use gloo.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, item: int) -> bool:
        """Whether work item ``item`` (a tile) is this process's: every ``world``-th, from its rank."""
        return item % self.world == self.rank


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun prepared; returns this process's info and device."""
    if not launched_by_torchrun():
        return DistInfo(), device
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> DistInfo:
    """This process's rank and the number of processes (one process: rank 0 of 1)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def sum_across(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` summed over all processes (itself in one process); each process contributes the tiles
    it computed and zeros elsewhere, so the sum is the whole raster."""
    if current().world == 1:
        return t
    buf = t.to(device)  # NCCL reduces GPU tensors only
    dist.all_reduce(buf)
    return buf.to(t.device)


def same_as_rank0(tensors, device: torch.device) -> None:
    """Overwrite ``tensors`` (in place) with rank 0's values: after work that every process did,
    (e.g. TTF), all go on with exactly the same numbers."""
    if current().world == 1:
        return
    for t in tensors:
        buf = t.detach().to(device).contiguous()
        dist.broadcast(buf, src=0)
        with torch.no_grad():
            t.copy_(buf.to(t.device))


def from_rank(obj, src: int):
    """``obj`` as process ``src`` has it (any picklable object; CPU tensors), in every process."""
    if current().world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
