"""Peak CPU tensor memory of a callable, from the allocator's own records (for benchmarks and tests).

torch has no ``max_memory_allocated`` for CPU. With ``profile_memory=True`` the profiler records every
allocation and free of the CPU allocator (tensor storages *and* kernels' internal scratch buffers), with
its size; the running sum of those sizes, in time order, is the live-bytes curve, and its maximum is the
peak above what was alive before the call. Caveats: this uses the profiler's experimental event tree
(``torch._C._profiler``), counts only memory allocated through c10's CPU allocator (not e.g. oneDNN's
private scratchpads or Python objects), and the profiler slows the call down -- time it separately.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile


def peak_cpu_memory(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn()`` and return ``(result, peak_bytes)``: the peak of live CPU-allocator bytes during the call,
    relative to the start (memory freed by ``fn`` that was allocated before it counts negative)."""
    from torch._C._profiler import _EventType

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        ev = stack.pop()
        if ev.tag == _EventType.Allocation:
            events.append((ev.start_time_ns, ev.extra_fields.alloc_size))
        stack.extend(ev.children)
    if not events:
        raise RuntimeError("the profiler recorded no CPU allocations; peak_cpu_memory works for CPU tensors only")
    events.sort(key=lambda e: e[0])
    live = peak = 0
    for _, size in events:
        live += size
        peak = max(peak, live)
    return result, peak
