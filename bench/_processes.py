"""What the benchmarks share: free ports, waiting for a server, a process's peak memory and CPU."""

from __future__ import annotations

import asyncio
import os
import socket

import aiohttp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until_ready(url: str, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers 2xx (or 401: up, but wants credentials)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status < 300 or response.status in (401, 405):
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{url} did not answer in {timeout} s")
            await asyncio.sleep(0.1)


def rss_kib(pid: int) -> int:
    """The process's resident memory now (VmRSS), in KiB."""
    return _status_kib(pid, "VmRSS")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    return round(_status_kib(pid, "VmHWM") / 1024, 1)


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise ValueError(f"no {field} for process {pid}")


def cpu_seconds(pid: int, *, main_thread: bool = False) -> float:
    """CPU time the process has used so far, user and system: all its threads, or only the
    main one (whose share of the wall time says whether an event loop was the bottleneck)."""
    path = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
    with open(path) as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
