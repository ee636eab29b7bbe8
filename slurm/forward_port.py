#!/usr/bin/env python3
"""Forward a TCP port of the host's network namespace to an address inside a network namespace, so that
SLURM's commands on the host (sbatch, squeue, scancel) reach slurmctld on the local cluster's private network
without the host getting an address on it (slurm/start-local-cluster.sh --nodes N starts it).

    forward_port.py LISTEN_PORT NETNS TARGET_HOST TARGET_PORT

Listens on 127.0.0.1:LISTEN_PORT here, then enters NETNS (a socket stays in the namespace it was created in,
so the listening socket stays on the host while every connection it makes is made inside NETNS)."""
from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns into network namespace {name}")
    os.close(fd)


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):  # one side closed: close both, the other pipe thread then ends too
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(listen_port: str, netns: str, target_host: str, target_port: str) -> None:
    server = socket.create_server(("127.0.0.1", int(listen_port)), reuse_port=False)
    enter_netns(netns)  # only this thread moves; connections below are made from inside the namespace
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection((target_host, int(target_port)), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    main(*sys.argv[1:5])
