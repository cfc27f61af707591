"""The README's two first commands, as a new user runs them: ``./scripts/serve``
says what it does, installs only when something changed, and ends with a
connect command that works when pasted into a new terminal (where .venv/bin
is not on PATH); ``./scripts/test`` runs the suite with the installed console
scripts on PATH."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: Bound on a script's run; the first install of a fresh .venv takes 10-20 s.
SCRIPT_TIMEOUT = 300
CONNECT_WITH = re.compile(r"connect with: (.+)")


#: pip pointed at a closed port on loopback: tests never reach PyPI, and an
#: install that was needed fails at once.
OFFLINE_PIP = {
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_NO_CACHE_DIR": "1",
    "PIP_RETRIES": "0",
}


def new_terminal(home: Path) -> dict[str, str]:
    """The environment of a new terminal: no venv on PATH (nor activated), a
    home of its own."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("REXEC_", "XDG_", "PYTEST_", "VIRTUAL_ENV"))
    }
    path = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry]
    env["PATH"] = os.pathsep.join(
        entry for entry in path if not (Path(entry).exists() and Path(entry).samefile(VENV_BIN))
    )
    env["HOME"] = str(home)
    return env | OFFLINE_PIP


@pytest.fixture(scope="module")
def installed() -> None:
    """This checkout's .venv, installed by the scripts from the current
    pyproject.toml (as scripts/test, which CI runs, makes sure of): else the
    scripts would install from PyPI, which tests do not reach."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "serve"), "--version"], env=new_terminal(Path.home()),
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False,
    )  # fmt: skip
    if "pip install failed" in result.stderr:
        pytest.skip(
            "this checkout's .venv was not installed by scripts/serve or scripts/test from the "
            "current pyproject.toml; run scripts/test (what CI runs), which installs first"
        )
    assert result.returncode == 0, result.stderr


def _read_until(process: subprocess.Popen[bytes], pattern: re.Pattern[str]) -> tuple[str, str]:
    """Read ``process``'s stderr until a line matches ``pattern`` (bounded);
    returns the match's first group and everything read."""
    assert process.stderr is not None
    deadline = time.monotonic() + SCRIPT_TIMEOUT
    text = ""
    while time.monotonic() < deadline:
        if select.select([process.stderr], [], [], 0.2)[0]:
            chunk = os.read(process.stderr.fileno(), 4096)
            if not chunk:
                break
            text += chunk.decode(errors="replace")
            if (match := pattern.search(text)) and text.endswith("\n"):
                return match.group(1), text
    pytest.fail(f"no line matching {pattern.pattern!r}: {text!r}")


@pytest.mark.parametrize("activated", [False, True], ids=["plain", "venv activated"])
@pytest.mark.usefixtures("installed")
def test_serve_says_what_it_does_and_prints_a_command_that_works_elsewhere(
    tmp_path: Path, activated: bool
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = new_terminal(home)
    if activated:  # as after 'source .venv/bin/activate' in the server's terminal
        env |= {"VIRTUAL_ENV": str(VENV_BIN.parent), "PATH": f"{VENV_BIN}:{env['PATH']}"}
    serve = subprocess.Popen(
        [str(ROOT / "scripts" / "serve"), "--port", "0", "--audit-log", str(tmp_path / "audit")],
        cwd=tmp_path, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        command, said = _read_until(serve, CONNECT_WITH)
        lines = said.splitlines()
        assert lines[0].startswith("scripts/serve: "), said  # before anything slow
        assert any("starting rexecd" in line for line in lines), said
        assert "rexecd: created a new key in" in said
        # Pasted into a new terminal: another directory, no venv on PATH.
        pasted = subprocess.run(
            ["/bin/sh", "-c", command], cwd=home, env=new_terminal(home),
            capture_output=True, timeout=SCRIPT_TIMEOUT, check=False,
        )  # fmt: skip
        local = subprocess.run(["uname", "-a"], capture_output=True, check=True).stdout
        assert (pasted.returncode, pasted.stdout) == (0, local), (command, pasted.stderr)
    finally:
        serve.send_signal(signal.SIGTERM)  # scripts/serve execs rexecd: this is its PID
        serve.wait(timeout=SCRIPT_TIMEOUT)
        assert serve.stderr is not None
        serve.stderr.close()


@pytest.mark.usefixtures("installed")
def test_serve_skips_the_install_when_nothing_changed(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "serve"), "--version"], env=new_terminal(tmp_path), text=True,
        capture_output=True, timeout=SCRIPT_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.startswith("rexecd ")
    assert "scripts/serve: .venv is up to date" in result.stderr
    assert "installing" not in result.stderr


def _fresh_clone(destination: Path) -> Path:
    """What ``git clone`` gives: the tracked files, no .venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False, timeout=60
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell a fresh clone's files")
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def test_serve_on_a_fresh_clone_says_what_it_does_before_the_slow_part(tmp_path: Path) -> None:
    # pip is pointed at a closed port (OFFLINE_PIP): the install fails at
    # once, and what serve says up to then is what is checked.
    clone = _fresh_clone(tmp_path / "clone")
    result = subprocess.run(
        [str(clone / "scripts" / "serve")], cwd=tmp_path, env=new_terminal(tmp_path), text=True,
        stdin=subprocess.DEVNULL, capture_output=True, timeout=SCRIPT_TIMEOUT, check=False,
    )  # fmt: skip
    said = [line for line in result.stderr.splitlines() if line.startswith("scripts/serve: ")]
    assert said[0].startswith("scripts/serve: creating .venv with Python 3."), result.stderr
    assert said[1].startswith("scripts/serve: installing rexec and its dependencies"), said
    assert "pip install failed" in said[-1] and "PyPI" in said[-1], said
    assert result.returncode == 1 and "starting rexecd" not in result.stderr
    assert not (clone / ".venv" / "rexec-install-stamp").exists()  # the next run installs


@pytest.mark.usefixtures("installed")
def test_scripts_test_finds_the_installed_console_scripts(tmp_path: Path) -> None:
    # The test that used to be skipped because .venv/bin was not on PATH.
    # -n 0: one test needs no workers (four would start and collect for it).
    selected = "tests/client/test_client_cli.py::test_console_script_is_installed"
    result = subprocess.run(
        [str(ROOT / "scripts" / "test"), "-q", "-p", "no:cacheprovider", "-rs", "-n", "0",
         f"--junitxml={tmp_path / 'junit.xml'}", selected],
        cwd=tmp_path, env=new_terminal(Path.home()), text=True,
        capture_output=True, timeout=SCRIPT_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout and "skipped" not in result.stdout, result.stdout
