"""The network pre-flight without a cluster: ranks as threads on real sockets. Every rank reaches the master,
or both sides fail within the timeout naming the node that did not; and SLURM's task layout names a rank's node.
(On the two-node cluster: tests/launch/test_two_nodes.py.)"""
from __future__ import annotations

import socket
import threading
import time

import pytest

from lit_diffusion.distributed.environment import node_of_rank, tasks_per_node
from lit_diffusion.distributed.preflight import PreflightError, check_rendezvous


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ranks(port: int, ranks: list[int], world: int, timeout: float) -> dict[int, Exception | None]:
    results: dict[int, Exception | None] = {}

    def rank(r: int) -> None:
        try:
            check_rendezvous("127.0.0.1", port, r, world, f"host{r}", lambda m: f"node-of-{m}", timeout=timeout)
            results[r] = None
        except PreflightError as error:
            results[r] = error

    threads = [threading.Thread(target=rank, args=(r,)) for r in ranks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_every_rank_reaches_the_master_and_the_port_is_free_again():
    port = _free_port()
    assert _ranks(port, [2, 1, 0], 3, timeout=20) == {0: None, 1: None, 2: None}
    socket.create_server(("", port)).close()  # the process group can bind it next


def test_a_rank_that_never_arrives_is_named_within_the_timeout():
    port = _free_port()
    started = time.monotonic()
    results = _ranks(port, [0, 1], 3, timeout=2)  # rank 2 never starts
    assert time.monotonic() - started < 10
    assert "rank(s) 2 on node-of-2 did not reach the master 127.0.0.1 (127.0.0.1:" in str(results[0])
    assert "not every rank did" in str(results[1])


def test_a_rank_that_cannot_reach_the_master_names_itself():
    started = time.monotonic()
    results = _ranks(_free_port(), [1], 2, timeout=2)  # nobody listens
    assert time.monotonic() - started < 10
    assert "rank 1 on host1 cannot reach the master 127.0.0.1" in str(results[1])


def test_the_node_of_a_rank_follows_slurms_layout(monkeypatch):
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "2(x2),1")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "a,b,c")
    assert tasks_per_node() == [2, 2, 1]
    assert [node_of_rank(r) for r in range(5)] == ["a", "a", "b", "b", "c"]
