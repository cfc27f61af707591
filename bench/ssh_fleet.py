"""OpenSSH on many loopback addresses, for clush and pdsh to fan out to.

One sshd listens on at most 16 addresses (OpenSSH's ``MAX_LISTEN_SOCKS``),
so ``SshFleet`` starts one sshd per 16 addresses, all on one port and
sharing one host key, one client key and one ``authorized_keys`` in a
temporary directory, each in the foreground (``sshd -D``) so that it is
stopped by its PID. Settings as ``local_sshd.py`` (no PAM, no DNS, quiet).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from fleet_measure import free_port, stop_processes
from local_sshd import SSH, SSHD, available, client_options, make_keys, settings

#: OpenSSH's limit on the listening sockets of one sshd.
ADDRESSES_PER_SSHD = 16

__all__ = ["SshFleet", "available"]


def cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of ``pid`` (its reaped children included)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(value) for value in fields[11:15])


class SshFleet:
    def __init__(self, directory: Path, addresses: list[str]) -> None:
        self.dir = directory
        self.addresses = addresses
        self.port = 0
        self.processes: list[subprocess.Popen[bytes]] = []
        self.client_key = directory / "client_key"

    def start(self, timeout: float = 20.0) -> None:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
        make_keys(d)
        self.port = free_port(self.addresses)
        for first in range(0, len(self.addresses), ADDRESSES_PER_SSHD):
            group = self.addresses[first : first + ADDRESSES_PER_SSHD]
            config = d / f"sshd_config.{first}"
            config.write_text(
                "".join(f"ListenAddress {a}:{self.port}\n" for a in group) + settings(d)
            )
            with open(d / f"sshd.{first}.log", "wb") as log:
                self.processes.append(
                    subprocess.Popen(
                        [str(SSHD), "-D", "-e", "-f", str(config)],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                    )
                )
        deadline = time.monotonic() + timeout
        for address in self.addresses:
            while True:
                try:
                    socket.create_connection((address, self.port), 0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"sshd did not listen on {address}") from None
                    time.sleep(0.05)
        probe = [str(SSH), *self.options(), "-l", "root", self.addresses[-1], "echo ok"]
        out = subprocess.run(probe, capture_output=True, timeout=20, check=False)
        if out.stdout.strip() != b"ok":
            raise RuntimeError(f"ssh to the local sshd fails: {out.stderr.decode()[-300:]}")

    def options(self) -> list[str]:
        """ssh options for this fleet (no host, no user)."""
        return client_options(self.port, self.client_key)

    def cpu_ticks(self) -> int:
        """CPU of the sshd listeners and the per-connection sshd they reaped."""
        return sum(cpu_ticks(p.pid) for p in self.processes)

    def stop(self) -> None:
        stop_processes(self.processes)
