"""What rexecd does for its operators beside serving clients: the HTTP health
and metrics endpoint (``--http``), UDP discovery (``--announce``), and reload
of keys and rules on SIGHUP. Started by rexec.daemon once the rexec port
listens, closed after the graceful shutdown (so ``/healthz`` says 503 while it
runs).

Reload (SIGHUP, ``systemctl reload rexecd``): first the audit log is opened
again at its path, for logrotate, whether or not the rest succeeds
(``AuditLog.reopen``). Then the settings are read again from
the same flags, environment and config file, and keys and rules are loaded
again. If anything is wrong, the error is logged, the old configuration stays,
and ``rexecd_config_reloads_total{result="failed"}`` goes up. Otherwise the
server's config is replaced: new connections authenticate against the new
keys; connections already authenticated keep the rules of the key they
authenticated with, and their running commands are not touched. Settings that
belong to sockets or the process (``RESTART_ONLY``) keep their old values, with
a warning line for each that changed; so does a value the file changed that a
flag or variable overrides (rexec/ops/reload.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from typing import TYPE_CHECKING

from rexec.log import log
from rexec.ops.discovery import start_announcer
from rexec.ops.http import HttpEndpoint
from rexec.ops.reload import RESTART_ONLY, Rebuild, restart_needed
from rexec.protocol import SUPPORTED_VERSIONS, Announcement
from rexec.server.server import Server
from rexec.server.settings import parse_http_address

if TYPE_CHECKING:
    from rexec.ops.metrics import ServerMetrics


class OperationsError(Exception):
    """The HTTP endpoint or the announcer could not start (one line)."""


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Operations:
    """The running extras of one server; ``await close()`` at the end."""

    def __init__(self, server: Server, rebuild: Rebuild | None) -> None:
        self.server = server
        #: Kept only where /metrics is served (--http): without a reader the
        #: counts would cost memory, prometheus_client, and a call per output
        #: chunk, for nothing.
        self.metrics: ServerMetrics | None = None
        self._rebuild = rebuild
        self._http: HttpEndpoint | None = None
        self._announcers: list[asyncio.DatagramTransport] = []
        self._listen: tuple[str, int] = ("", 0)
        self._signal_installed = False

    @classmethod
    async def start(
        cls,
        server: Server,
        listen: tuple[str, int],
        rebuild: Rebuild | None = None,
    ) -> Operations:
        """Start what the settings ask for and print each bound address on
        stdout (``rexecd http on HOST:PORT``, ``rexecd announcing on
        0.0.0.0:PORT``); install the SIGHUP handler when ``rebuild`` is given.
        With ``http``, the server's metrics are kept from now on.

        Raises:
            OperationsError: a socket could not be bound.
        """
        self = cls(server, rebuild)
        self._listen = (listen[0], listen[1])
        settings = server.config.settings
        try:
            if settings.http is not None:
                from rexec.ops.metrics import ServerMetrics  # only here: see self.metrics

                self.metrics = metrics = ServerMetrics(server)
                server.subscribe(metrics)
                host, port = parse_http_address(settings.http)
                self._http = HttpEndpoint(
                    not_accepting=server.not_accepting, metrics=metrics.render
                )
                try:
                    bound = await self._http.start(host, port)
                except OSError as exc:
                    raise OperationsError(
                        f"cannot serve HTTP on {_shown(host, port)}: {exc.strerror or exc}"
                    ) from None
                print(f"rexecd http on {_shown(*bound)}", flush=True)
            if settings.announce:
                try:
                    self._announcers, port = await start_announcer(
                        settings.announce_port, self._announcement,
                        settings.announce_networks, self._count_probe, unicast=self._listen[0],
                    )  # fmt: skip
                except OSError as exc:
                    raise OperationsError(
                        f"cannot answer discovery on UDP port {settings.announce_port}: "
                        f"{exc.strerror or exc}"
                    ) from None
                print(f"rexecd announcing on 0.0.0.0:{port}", flush=True)
        except OperationsError:
            await self.close()
            raise
        if rebuild is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
            self._signal_installed = True
        return self

    async def close(self) -> None:
        if self._signal_installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal_installed = False
        for announcer in self._announcers:
            announcer.close()
        self._announcers = []
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _count_probe(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.count_probe(result)

    def _count_reload(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.count_reload(result)

    def _announcement(self) -> Announcement | None:
        server = self.server
        if server.shutting_down:
            return None
        host, port = self._listen
        if host in ("0.0.0.0", "::"):
            host = ""  # every address: the prober uses the answer's source
        config = server.config
        return Announcement(
            name=config.server_name, host=host, port=port, protocol=tuple(SUPPORTED_VERSIONS),
            tls=config.ssl is not None, client_cert=config.settings.tls_client_ca is not None,
        )  # fmt: skip

    def reload(self) -> bool:
        """Reopen the audit log (logrotate), whatever comes next; re-read
        settings, keys and rules. True if the new ones are in use."""
        server = self.server
        server.audit.reopen()
        old = server.config
        assert self._rebuild is not None
        try:
            new, overridden = self._rebuild()
        except Exception as exc:  # noqa: BLE001  whatever went wrong, the running config stays
            self._count_reload("failed")
            log(f"reload failed, keeping the running configuration: {exc}", level="error")
            server.audit.try_write("reload", ok=False, reason=str(exc))
            return False
        kept = {name: getattr(old.settings, name) for name in RESTART_ONLY}
        not_applied = restart_needed(old.settings, new.settings)
        server.config = dataclasses.replace(
            new,
            settings=new.settings.model_copy(update=kept),
            server_name=old.server_name,
            ssl=old.ssl,
            process_policy=(
                old.process_policy if new.settings.run_as != old.settings.run_as
                else new.process_policy
            ),
        )  # fmt: skip
        server.admission.limits = server.config.admission_limits
        self._count_reload("ok")
        names = [key.name for key in server.config.keys]
        server.audit.try_write("reload", ok=True, keys=names)
        log(f"reloaded the configuration: {len(names)} key(s)", keys=",".join(names))
        for line in not_applied + overridden:
            log(line, level="warning")
        return True
