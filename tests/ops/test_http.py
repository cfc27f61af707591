"""``rexecd --http``: /healthz and /metrics over real HTTP requests against a
real rexecd; the counters move as commands run; the text parses; 503 while
shutting down; 400/404/405/431; no command text in any response."""

from __future__ import annotations

import socket
import time

from forkserver import run_rexecd

from rexec.protocol import Cancel
from tests.server.wire import Wire, connect, run_once

from .conftest import http_address, http_request, parse_prometheus, sample, scrape

HTTP = ("--http", "127.0.0.1:0")


def raw_http(server, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(http_address(server), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_healthz_is_200_while_accepting(start_server) -> None:
    server = start_server(*HTTP)
    response = http_request(server, "/healthz")
    assert response.status == 200
    assert response.body == b"ok\n"
    assert response.headers["connection"] == "close"
    head = http_request(server, "/healthz", method="HEAD")
    assert head.status == 200 and head.body == b""


def test_idle_connections_never_shut_out_a_health_check(start_server) -> None:
    """40 connections that send nothing (more than the 32 the endpoint holds)
    take nothing from a health check that sends its request at once: the
    oldest idle ones are closed to make room (attacker finding F7)."""
    server = start_server(*HTTP)
    idle = [socket.create_connection(http_address(server), timeout=5.0) for _ in range(40)]
    try:
        for _ in range(3):
            response = http_request(server, "/healthz")
            assert (response.status, response.body) == (200, b"ok\n")
        try:
            assert idle[0].recv(1) == b""  # displaced, with nothing sent to it
        except ConnectionResetError:
            pass  # displaced by a reset: as good
    finally:
        for sock in idle:
            sock.close()


def test_metrics_parse_with_every_family(start_server) -> None:
    server = start_server(*HTTP)
    response = http_request(server, "/metrics")
    assert response.status == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = parse_prometheus(response.body.decode())
    expected = {
        "rexecd_connections_total": "counter", "rexecd_open_connections": "gauge",
        "rexecd_auth_failures_total": "counter", "rexecd_commands_started_total": "counter",
        "rexecd_commands_finished_total": "counter", "rexecd_running_commands": "gauge",
        "rexecd_commands_refused_total": "counter", "rexecd_rejections_total": "counter",
        "rexecd_output_bytes_total": "counter", "rexecd_command_duration_seconds": "histogram",
        "rexecd_shutting_down": "gauge", "rexecd_config_reloads_total": "counter",
        "rexecd_discovery_probes_total": "counter", "rexecd_build_info": "gauge",
        "rexecd_accepting_commands": "gauge",
    }  # fmt: skip
    assert {name: families[name].kind for name in expected} == expected
    assert sample(families, "rexecd_running_commands") == 0
    assert sample(families, "rexecd_shutting_down") == 0
    assert sample(families, "rexecd_accepting_commands") == 1


def test_counters_move_as_commands_run(start_server, marker) -> None:
    server = start_server(*HTTP, "--max-commands", "1", "--max-unauthenticated", "2")
    before = scrape(server)

    secret = "do-not-show-this-" + marker()
    assert (
        run_once(server, ["sh", "-c", "printf 12345; printf abc >&2", secret]).exit.exit_code == 0
    )
    assert run_once(server, shell="kill -9 $$").exit.signal == 9
    assert run_once(server, ["sleep", "5"], timeout=0.3).exit.timed_out
    assert run_once(server, ["/nonexistent/program"]).error.code == "spawn.not_found"
    with connect(server) as wire:  # max_commands 1: the second is busy
        first = wire.run(["sleep", marker()])
        second = wire.run(["true"])
        assert wire.wait(second).error.code == "busy"
        during = scrape(server)
        assert sample(during, "rexecd_running_commands") == 1
        assert sample(during, "rexecd_open_connections") >= 1
        wire.send(Cancel(id=first))
        assert wire.wait(first).exit.cancelled
    bad = Wire.open(server.host, server.port)
    bad.authenticate(key=bytes(32), expect_ok=False)
    bad.expect_error_then_eof("auth.failed")
    bad.close()
    # Admission: two connections still authenticating fill the table; a third
    # takes the oldest one's slot, which is closed with busy.
    pending = [Wire.open(server.host, server.port) for _ in range(2)]
    for wire in pending:
        wire.read_hello()
    newcomer = Wire.open(server.host, server.port)
    newcomer.read_hello()
    pending[0].expect_error_then_eof("busy")
    for wire in (*pending, newcomer):
        wire.close()

    deadline = time.monotonic() + 5
    while True:  # the refused connection's counters land as its socket closes
        after = scrape(server)
        if (
            sample(after, "rexecd_rejections_total", reason="admission") >= 1
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.05)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("rexecd_commands_started_total") == 4
    assert delta("rexecd_commands_finished_total", outcome="exit") == 1
    assert delta("rexecd_commands_finished_total", outcome="signal") == 1
    assert delta("rexecd_commands_finished_total", outcome="timeout") == 1
    assert delta("rexecd_commands_finished_total", outcome="cancelled") == 1
    assert delta("rexecd_commands_refused_total", code="spawn.not_found") == 1
    assert delta("rexecd_commands_refused_total", code="busy") == 1
    assert delta("rexecd_rejections_total", reason="busy") == 1
    assert delta("rexecd_rejections_total", reason="admission") == 1
    assert delta("rexecd_auth_failures_total", reason="failed") == 1
    assert delta("rexecd_output_bytes_total", stream="stdout") == 5
    assert delta("rexecd_output_bytes_total", stream="stderr") == 3
    assert delta("rexecd_command_duration_seconds_count") == 4
    assert delta("rexecd_command_duration_seconds_sum") >= 0.3  # the timed-out sleep at least
    assert delta("rexecd_connections_total") >= 9
    assert sample(after, "rexecd_running_commands") == 0
    # Counts only: no command text, argument or key name in the exposition.
    body = http_request(server, "/metrics").body
    assert secret.encode() not in body and b"sleep" not in body and b"kill" not in body


def test_unknown_paths_methods_and_bad_requests(start_server) -> None:
    server = start_server(*HTTP)
    assert http_request(server, "/").status == 404
    assert http_request(server, "/metrics/../etc").status == 404
    assert http_request(server, "/metrics?name[]=x").status == 200
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        response = http_request(server, "/metrics", method=method)
        assert response.status == 405, method
        assert response.headers["allow"] == "GET, HEAD"
    assert raw_http(server, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_http(server, b"GET /healthz HTTP/1.1\r\n\r\n").startswith(
        b"HTTP/1.1 400 "
    )  # no Host
    assert raw_http(server, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    assert raw_http(server, b"\xff\xfe /healthz HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n"
    assert raw_http(server, huge).startswith(b"HTTP/1.1 431 ")
    # Whole in one write, just past 8 KiB (attacker5: h11 bounds only a head
    # still incomplete).
    whole = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n"
    assert raw_http(server, whole).startswith(b"HTTP/1.1 431 ")
    # A wrong path is not echoed back.
    response = http_request(server, "/<script>probe-path</script>")
    assert response.status == 404 and b"probe-path" not in response.body
    # rexecd still serves after all that.
    assert http_request(server, "/healthz").status == 200


def test_healthz_is_503_during_graceful_shutdown(start_server, marker) -> None:
    server = start_server(*HTTP, "--shutdown-grace", "20")
    wire = connect(server)
    command = wire.run(["sleep", marker()])
    wire.wait_for(lambda: wire.results[command].started is not None)
    assert scrape(server) and http_request(server, "/healthz").status == 200
    server.process.send_signal(15)
    deadline = time.monotonic() + 5
    status = 200
    while time.monotonic() < deadline:
        status = http_request(server, "/healthz").status
        if status == 503:
            break
        time.sleep(0.05)
    assert status == 503
    response = http_request(server, "/healthz")
    assert response.body == b"shutting down\n"
    families = scrape(server)
    assert sample(families, "rexecd_shutting_down") == 1
    assert sample(families, "rexecd_accepting_commands") == 0
    # The running command ends; the server finishes its shutdown and exits 0.
    wire.send(Cancel(id=command))
    assert wire.wait(command).exit.cancelled
    wire.close()
    assert server.process.wait(timeout=10) == 0


def test_http_off_loopback_needs_insecure(tmp_path) -> None:
    key = tmp_path / "key"
    key.write_text("00" * 32)
    key.chmod(0o600)
    result = run_rexecd("--key-file", str(key), "--http", "0.0.0.0:9100", "--check-config")
    assert result.returncode == 1
    assert "refusing to serve HTTP on 0.0.0.0" in result.stderr and "--insecure" in result.stderr
    result = run_rexecd(
        "--key-file", str(key), "--http", "0.0.0.0:9100", "--insecure", "--check-config"
    )
    assert result.returncode == 0, result.stderr
    result = run_rexecd("--key-file", str(key), "--http", "somewhere", "--check-config")
    assert result.returncode == 1 and "http must be IP:PORT" in result.stderr


def test_http_port_in_use_is_a_start_up_error(tmp_path) -> None:
    key = tmp_path / "key"
    key.write_text("00" * 32)
    key.chmod(0o600)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_rexecd(
            "--key-file", str(key), "--port", "0", "--state-dir", str(tmp_path / "state"),
            "--audit-log", str(tmp_path / "audit"), "--http", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"rexecd: cannot serve HTTP on 127.0.0.1:{port}")
    )


def test_metrics_include_the_process_rss_cpu_and_descriptors(start_server) -> None:
    server = start_server(*HTTP)
    families = scrape(server)
    kinds = {name: families[name].kind for name in families if name.startswith("process_")}
    assert kinds["process_resident_memory_bytes"] == "gauge"
    assert kinds["process_cpu_seconds_total"] == "counter"
    assert kinds["process_open_fds"] == "gauge" and kinds["process_max_fds"] == "gauge"
    rss = sample(families, "process_resident_memory_bytes")
    assert 1 << 20 < rss < 1 << 30  # a Python daemon: MiBs, not bytes or GiBs
    assert sample(families, "process_open_fds") >= 3
    assert sample(families, "process_cpu_seconds_total") > 0
