"""Drives the public client library (client/, import package ``rexec_client``)
for the "rexec (client library)" row, the way a user would:

* round trip and 16 concurrent: ``ClientConnection.run(["true"])`` on warm,
  authenticated connections from ``rexec_client.connect`` (one per client);
* 1 GiB: ``ClientConnection.start([...])`` and ``process.stdout.read(1 MiB)``
  until EOF (streaming, so the client does not hold 1 GiB), then ``wait()``.
"""

from __future__ import annotations

MiB = 1 << 20


def check() -> None:
    """Raise ImportError/AttributeError when the library is not usable yet."""
    import rexec_client

    for name in ("connect", "ClientConnection"):
        getattr(rexec_client, name)
    for method in ("run", "start"):
        getattr(rexec_client.ClientConnection, method)


class _Adapter:
    def __init__(self, conns) -> None:
        self.conns = conns

    async def run_true(self, i: int) -> None:
        result = await self.conns[i].run(["true"])
        if result.returncode != 0:
            raise RuntimeError(f"true returned {result.returncode}")

    async def bulk(self, nbytes: int) -> int:
        proc = await self.conns[0].start(["head", "-c", str(nbytes), "/dev/zero"])
        got = 0
        while chunk := await proc.stdout.read(MiB):
            got += len(chunk)
        status = await proc.wait()
        if status.returncode != 0:
            raise RuntimeError(f"head returned {status.returncode}")
        return got

    async def close(self) -> None:
        for c in self.conns:
            await c.close()


async def open(host: str, port: int, key: bytes, n: int) -> _Adapter:  # noqa: A001
    import rexec_client

    conns = [await rexec_client.connect(host, port, key) for _ in range(n)]
    result = await conns[0].run(["echo", "ok"])
    if result.stdout != b"ok\n":
        raise RuntimeError(f"client library sanity check failed: {result!r}")
    return _Adapter(conns)
