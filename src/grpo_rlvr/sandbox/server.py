"""The host's end of the fork server (`program.py --serve`): one interpreter per host process, started
on first use and again if it dies, that forks a fresh child for each run. A run then costs a fork, not
an interpreter start-up, the child's imports and compiling `program.py` (docs/benchmarks.md)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

PROGRAM = Path(__file__).with_name("program.py")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
RESULT_FD = 3  # program.py's RESULT_FD: where a run finds its verdict pipe


class Server:
    """One `program.py --serve`; its control socket keeps message boundaries (SOCK_SEQPACKET)."""

    def __init__(self) -> None:
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", "-u", str(PROGRAM), "--serve", str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=ENV, cwd="/",
                pass_fds=(theirs.fileno(),), start_new_session=True,
            )  # fmt: skip
        self.lock = threading.Lock()

    def start(self, stdin: int, output: int, result: int, workdir: int) -> int:
        """Fork a run on these fds (the server's copies; ours stay ours); its pid."""
        with self.lock:
            socket.send_fds(self.control, [b"run"], [stdin, output, result, workdir])
            reply = self.control.recv(4)
        if len(reply) != 4:
            raise ConnectionError("the sandbox's fork server is gone")
        return struct.unpack(">i", reply)[0]

    def reap(self, pid: int) -> None:
        """The run's tree is killed: its first process may be reaped (and its pid reused)."""
        with self.lock:
            self.control.send(f"reap {pid}".encode())


_server: Server | None = None
_server_lock = threading.Lock()


def start_run(stdin: int, output: int, result: int, workdir: int) -> tuple[Server, int]:
    """Fork a run through the fork server, starting one (again) when there is none or it died."""
    global _server
    with _server_lock:
        if _server is None or _server.proc.poll() is not None:
            _server = Server()
        server = _server
    try:
        return server, server.start(stdin, output, result, workdir)
    except OSError:  # it died between two runs: one more try on a fresh one
        with _server_lock:
            if _server is server:
                _server = Server()
            server = _server
        return server, server.start(stdin, output, result, workdir)
