"""Jobs keep freed tensor memory for reuse while they run and give it back when they end."""
import os
import sys

import pytest
import torch

from stacksr.core import heap
from stacksr.core.job_settings import SuperResolveSettings


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._LIBC is None, reason="glibc only")
def test_large_freed_tensors_stay_for_reuse_inside_a_job_and_go_back_after_it():
    before = _rss_mb()
    with heap.heap_reuse():
        big = torch.ones(64 * 2 ** 20)  # 256 MB, above glibc's largest mmap threshold
        del big
        kept = _rss_mb()
        assert kept - before > 200  # still in the process, ready for the next tile's tensor
    assert _rss_mb() - before < 50  # given back when the job ends


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._LIBC is None, reason="glibc only")
def test_between_tiles_freed_memory_goes_back_only_after_a_tile_raised_the_resident_memory():
    with heap.heap_reuse():
        heap.tidy()  # the job's starting level
        big = torch.ones(64 * 2 ** 20)  # a first tile: 256 MB more than the level
        del big
        grown = _rss_mb()
        heap.tidy()
        assert _rss_mb() < grown - 200  # a new high: the freed pages go back
        big = torch.ones(64 * 2 ** 20)  # a tile of the same shape: no new high
        del big
        heap.tidy()
        assert _rss_mb() > grown - 50  # kept for the next tile, which faults nothing in


def test_nested_and_failing_jobs_restore_the_defaults_once_the_last_one_ends():
    assert not heap.active()
    with heap.heap_reuse():
        with pytest.raises(RuntimeError):
            with heap.heap_reuse():
                raise RuntimeError("a job failed")
        assert heap.active()  # the outer job still runs
    assert not heap.active()


def test_a_super_resolution_job_runs_with_heap_reuse_and_ends_without_it(sample_images, tmp_path):
    from stacksr.core.progress import Monitor
    from stacksr.core.jobs.sr_job import run_superresolve
    from stacksr.core.io.stack_sources import sources_from_inputs

    seen = []

    class Watch(Monitor):
        def _emit(self, fraction, message):
            seen.append(heap.active())

    run_superresolve(sources_from_inputs(sample_images[:3]), SuperResolveSettings(str(tmp_path / "sr.tif"),
                     method="bicubic"), monitor=Watch())
    assert seen and all(seen) and not heap.active()
