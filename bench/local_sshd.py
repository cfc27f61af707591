"""A self-contained OpenSSH server for the benchmark: its own host key,
authorized key and config in a temporary directory, on 127.0.0.1 and a free
high port, run in the foreground (``sshd -D``) so it is stopped by its PID.

Settings follow bench-notes.md: MaxSessions/MaxStartups raised so 16
concurrent channels are not refused, ``SetEnv SHLVL=1`` so Debian's bash does
not source root's .bashrc for every command, ``UsePAM no``; the sftp
subsystem (Debian's external ``sftp-server``) for scp and sftp.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
SSH = shutil.which("ssh")
SSH_KEYGEN = shutil.which("ssh-keygen")
#: For ``sftp`` and ``scp`` (OpenSSH >= 9.0's scp speaks SFTP): Debian's path.
SFTP_SERVER = next(
    (
        p
        for p in (
            "/usr/lib/openssh/sftp-server",
            "/usr/libexec/sftp-server",
            "/usr/libexec/openssh/sftp-server",
        )
        if os.path.exists(p)
    ),
    "internal-sftp",
)


def available() -> str | None:
    """None when usable, else why not."""
    missing = [n for n, p in (("sshd", SSHD), ("ssh", SSH), ("ssh-keygen", SSH_KEYGEN)) if not p]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install -y openssh-server)"
    return None


def make_keys(directory: Path) -> None:
    """A host key, a client key, and the client key as the only authorized one."""
    for name in ("host_key", "client_key"):
        subprocess.run(
            [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
    shutil.copy(directory / "client_key.pub", directory / "authorized_keys")
    os.chmod(directory / "authorized_keys", 0o600)


def settings(directory: Path) -> str:
    """The sshd_config lines of every benchmark sshd (the keys of ``make_keys``)."""
    return f"""\
HostKey {directory / "host_key"}
AuthorizedKeysFile {directory / "authorized_keys"}
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxSessions 256
MaxStartups 256:30:512
SetEnv SHLVL=1
PrintMotd no
UseDNS no
LogLevel ERROR
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_options(port: int, key: str | Path) -> list[str]:
    """ssh options for a private sshd on ``port`` with ``key`` (no host, no
    user): no config file, no prompts, no known_hosts, quiet."""
    return [
        "-F", "/dev/null", "-p", str(port), "-i", str(key),
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
        "-o", "IdentitiesOnly=yes",
    ]  # fmt: skip


class LocalSshd:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.master: subprocess.Popen | None = None
        self.control_path = str(directory / "cm.sock")
        self.client_key = str(directory / "client_key")

    def start(self, timeout: float = 10.0) -> None:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
        make_keys(d)
        self.port = _free_port()
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\n{settings(d)}"
            f"Subsystem sftp {SFTP_SERVER}\n"
        )
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(d / "sshd.log", "wb"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(d / 'sshd.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("sshd did not start listening")
        # Check that a command runs at all (a clear error now beats 0 cmd/s later).
        out = subprocess.run(self.argv(mux=False) + ["echo", "ok"], capture_output=True, timeout=20)
        if out.stdout.strip() != b"ok":
            raise RuntimeError(f"ssh to the local sshd fails: {out.stderr.decode()[-300:]}")

    def base(self) -> list[str]:
        return [SSH, *client_options(self.port, self.client_key)]

    def argv(self, *, mux: bool) -> list[str]:
        """ssh argv up to the host; append the remote command."""
        extra = (
            ["-o", "ControlMaster=no", "-o", f"ControlPath={self.control_path}"]
            if mux
            else ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        )
        return self.base() + extra + ["root@127.0.0.1"]

    def start_master(self, timeout: float = 10.0) -> None:
        """The warm ControlMaster, in the foreground so we hold its PID."""
        self.master = subprocess.Popen(
            self.base()
            + [
                "-N",
                "-o",
                "ControlMaster=yes",
                "-o",
                f"ControlPath={self.control_path}",
                "-o",
                "ControlPersist=no",
                "root@127.0.0.1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.control_path):
            if time.monotonic() > deadline or self.master.poll() is not None:
                raise RuntimeError("ssh ControlMaster did not start")
            time.sleep(0.05)

    def server_pids(self) -> list[int]:
        """The sshd listener and its sshd descendants (not the commands)."""
        if self.process is None:
            return []
        pids = [self.process.pid]
        todo = [self.process.pid]
        while todo:
            pid = todo.pop()
            for child in _children(pid):
                if _comm(child).startswith("sshd"):
                    pids.append(child)
                    todo.append(child)
        return pids

    def stop(self) -> None:
        for proc in (self.master, self.process):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
