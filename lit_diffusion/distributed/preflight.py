"""Pre-flight checks. Before any process group exists (check_rendezvous, called by distributed/environment.py
under SLURM): every rank reaches the master within a short timeout, or the job fails naming the node that
cannot. Before the first step (Preflight): all ranks run the same configuration (hash of the parsed config)
and a collective succeeds. A failure is reported on every rank with a message naming the ranks and hosts,
instead of a hang or a silent divergence hours later."""
from __future__ import annotations

import hashlib
import json
import logging
import socket
import time
from typing import Callable

import lightning.pytorch as pl
import torch.distributed as dist

log = logging.getLogger("lit_diffusion.distributed")


def config_hash(config: dict) -> str:
    """A stable short hash of a configuration made of plain values."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class PreflightError(RuntimeError):
    pass


def check_ranks(reports: list[dict]) -> None:
    """Raise PreflightError unless every rank reported the same config hash and world size."""
    hashes = {r["config_hash"] for r in reports}
    if len(hashes) > 1:
        lines = [f"  rank {r['rank']} on {r['host']}: config {r['config_hash']}" for r in reports]
        raise PreflightError("pre-flight: the ranks were started with different configurations (every srun task must "
                             "get the same config files and overrides):\n" + "\n".join(lines))
    worlds = {r["world_size"] for r in reports}
    if worlds != {len(reports)}:
        raise PreflightError(f"pre-flight: ranks disagree on the world size ({sorted(worlds)}) but {len(reports)} answered")


class Preflight(pl.Callback):
    """Runs at setup, after the process group exists: gathers (rank, host, config hash) from every rank."""

    def __init__(self, config_hash: str):
        self.config_hash = config_hash

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        world = trainer.world_size
        mine = {"rank": trainer.global_rank, "host": socket.gethostname(), "config_hash": self.config_hash,
                "world_size": world}
        if world > 1:
            if not (dist.is_available() and dist.is_initialized()):
                raise PreflightError(f"pre-flight: world size is {world} but torch.distributed is not initialised")
            reports: list = [None] * world
            try:
                dist.all_gather_object(reports, mine)
            except Exception as error:  # a failed collective: name it rather than a bare backend error
                raise PreflightError(f"pre-flight: rank {trainer.global_rank} could not complete a collective with "
                                     f"{world} ranks: {type(error).__name__}: {error}") from error
        else:
            reports = [mine]
        check_ranks(reports)
        if trainer.global_rank == 0:
            log.info("pre-flight ok: %d rank(s), config %s, hosts %s", world, self.config_hash,
                        sorted({r["host"] for r in reports}))


def _resolve(address: str) -> str:
    try:
        return socket.gethostbyname(address)
    except OSError as error:
        return f"unresolved: {error}"


def check_rendezvous(address: str, port: int, rank: int, world_size: int, host: str,
                     node_of_rank: Callable[[int], str], timeout: float) -> None:
    """Every rank reaches the master (address:port, where rank 0 listens) within `timeout` seconds, before any
    process group exists, or fails naming the node. Without it a rank that cannot reach the master waits in
    torch's rendezvous, and one that can waits for the others, until the collective timeout (30 min by default).
    The port is the one the process group binds next; rank 0 closes it only after every client has."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    if rank == 0:
        _gather_ranks(port, world_size, deadline, timeout, address, node_of_rank)
        log.info("pre-flight network ok: %d rank(s) reached the master %s:%d in %.1f s", world_size, address, port,
                 time.monotonic() - started)
        return
    _reach_master(address, port, rank, host, deadline, timeout)


def _gather_ranks(port, world_size, deadline, timeout, address, node_of_rank) -> None:
    try:
        server = socket.create_server(("", port), backlog=world_size)  # every interface, as the process group's store
    except OSError as error:
        raise PreflightError(f"pre-flight: the master cannot listen on port {port} ({error}); another job on this node "
                             "may use it: set MASTER_PORT to a free port") from None
    clients: dict[int, socket.socket] = {}
    try:
        while len(clients) < world_size - 1:
            server.settimeout(max(0.0, deadline - time.monotonic()))
            try:
                connection, _ = server.accept()
                connection.settimeout(max(1.0, deadline - time.monotonic()))
                hello = connection.makefile("r").readline().split()
                clients[int(hello[0])] = connection
            except (OSError, ValueError, IndexError):  # timed out (or a stray connection): check the deadline
                if time.monotonic() >= deadline:
                    break
        missing = sorted(set(range(1, world_size)) - set(clients))
        reply = b"fail\n" if missing else b"ok\n"
        for connection in clients.values():
            try:
                connection.sendall(reply)
            except OSError:
                pass
        if missing:
            nodes = sorted({node_of_rank(r) for r in missing})
            raise PreflightError(
                f"pre-flight: rank(s) {', '.join(map(str, missing))} on {', '.join(nodes)} did not reach the master "
                f"{address} ({_resolve(address)}:{port}) within {timeout:.0f} s: {', '.join(nodes)} cannot reach "
                f"{address} over the network; check its link and firewall (the job's nodes must reach each other "
                "on the address their host names resolve to), or raise --distributed.preflight_timeout_seconds")
        for connection in clients.values():  # let the clients close first: the port is not left in TIME_WAIT here
            try:
                connection.settimeout(5)
                connection.recv(1)
            except OSError:
                pass
    finally:
        for connection in clients.values():
            connection.close()
        server.close()


def _reach_master(address, port, rank, host, deadline, timeout) -> None:
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=max(0.1, min(5.0, deadline - time.monotonic()))) as s:
                s.sendall(f"{rank} {host}\n".encode())
                s.settimeout(max(1.0, deadline - time.monotonic()) + 5)  # rank 0 answers at its own deadline
                answer = s.makefile("r").readline().strip()
            if answer == "ok":
                return
            raise PreflightError(f"pre-flight: rank {rank} on {host} reached the master {address}:{port}, but not "
                                 "every rank did (the master's log names the node that did not)")
        except (OSError, socket.timeout) as failure:
            error = failure
            time.sleep(0.5)
    raise PreflightError(f"pre-flight: rank {rank} on {host} cannot reach the master {address} "
                         f"({_resolve(address)}:{port}) within {timeout:.0f} s ({type(error).__name__}: {error}); "
                         f"check the link and firewall of {host}, or raise --distributed.preflight_timeout_seconds")
