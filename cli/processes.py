"""Backbone processes as children: start a `backbone` sub-command, wait until healthy, stop.

The demo and the integration tests run the worker and connectors exactly as an operator
would, as separate processes talking over real sockets.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess  # nosec B404 # every call is a fixed command, checked under B603
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class BackboneProcess:
    """One running `backbone ...` command, its health URL and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    health_url: str

    @classmethod
    def start(
        cls, name: str, args: list[str], env: dict[str, str], logs: Path, health_url: str
    ) -> BackboneProcess:
        """Start `backbone <args>` with `env`, writing its output to `<logs>/<name>.log`."""
        log = logs / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(  # nosec B603 # this interpreter running `backbone`, no shell
                [sys.executable, "-m", "cli", *args], env=env, stdout=out, stderr=out
            )
        return cls(name, process, log, health_url)

    def wait_healthy(self, timeout_s: float = 90.0) -> None:
        """Block until the health URL answers 200; RuntimeError if it exits or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log}"
                )
            try:
                if httpx.get(self.health_url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} was not healthy within {timeout_s:.0f} s; see {self.log}")

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far (user + system), from /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait for a clean exit, SIGKILL if it does not come; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def stop_all(processes: list[BackboneProcess]) -> None:
    """Stop every process, signalling all first so they shut down in parallel."""
    for child in processes:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in processes:
        child.stop()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
