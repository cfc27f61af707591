"""What a running server needs, resolved from its ``Settings``: keys loaded,
TLS context built, accounts looked up. Built once at start-up by rexec.daemon."""

from __future__ import annotations

import dataclasses
import ipaddress
import ssl

from rexec.protocol import Limits
from rexec.server.admission import AdmissionLimits
from rexec.server.policy import KeyRules
from rexec.server.process_setup import ProcessPolicy
from rexec.server.runner import Graces
from rexec.server.settings import DEFAULT_PORT, Settings

__all__ = ["DEFAULT_PORT", "ServerConfig"]


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything a running server needs, already validated.

    Attributes:
        keys: the authorised keys with their rules (at least one).
        server_name: the name announced in ``hello`` and bound into the proofs.
        settings: the operational settings (timeouts, caps, admission).
        limits: per-connection protocol limits (announced to clients).
        process_policy: the account and resource limits of commands.
        ssl: the TLS context, or None for plaintext (loopback only).
    """

    keys: tuple[KeyRules, ...]
    server_name: str
    settings: Settings
    process_policy: ProcessPolicy = dataclasses.field(default_factory=ProcessPolicy.current)
    ssl: ssl.SSLContext | None = None

    @property
    def limits(self) -> Limits:
        return Limits(max_commands=self.settings.max_commands)

    @property
    def graces(self) -> Graces:
        return Graces(kill=self.settings.kill_grace, drain=self.settings.drain_grace)

    @property
    def admission_limits(self) -> AdmissionLimits:
        s = self.settings
        return AdmissionLimits(
            max_connections=s.max_connections,
            max_connections_per_source=s.max_connections_per_source,
            max_connections_per_key=s.max_connections_per_key,
            max_unauthenticated=s.max_unauthenticated,
            auth_failures=s.auth_failures,
            auth_failure_window=s.auth_failure_window,
            auth_penalty=s.auth_penalty,
            penalty_exempt=tuple(
                ipaddress.ip_network(network, strict=False) for network in s.auth_penalty_exempt
            ),
        )
