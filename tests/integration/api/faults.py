"""A fault-injecting HTTP proxy in front of the local API server, for the job API's retry tests.

The API server itself never fails on purpose, but real ones answer 503 while restarting, 429
when throttling, and load balancers cut connections; this proxy answers chosen requests with a
``503`` instead of forwarding them, counts every request by method and path, and streams the
rest (watches, followed logs) through as they arrive. It speaks plain HTTP to the client, so a
kubeconfig pointing at it needs no certificate of its own, and HTTPS to the API server.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

_HOP_BY_HOP = {"connection", "content-length", "content-encoding", "keep-alive",
               "transfer-encoding", "upgrade"}


class FaultProxy:
    """``fail(method, path)`` decides, per request, whether it is answered 503 here."""

    def __init__(self, kubeconfig: str, fail: Callable[[str, str], bool]) -> None:
        self.source = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = self.source["clusters"][0]["cluster"]
        self.upstream = cluster["server"].rstrip("/")
        ca = cluster.get("certificate-authority-data")
        self.ssl = ssl.create_default_context(cadata=base64.b64decode(ca).decode()) \
            if ca else None
        self.fail = fail
        self.requests: list[tuple[str, str]] = []  # (method, path with query)
        self.failed: list[tuple[str, str]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self, kubeconfig_out: Path) -> str:
        """Start listening; returns a copy of the kubeconfig that goes through the proxy."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        # Streams the client dropped (a finished follower's watch) are cut at close, not
        # waited for: aiohttp would give them its default minute.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0,
                                     handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession(auto_decompress=False,
                                              timeout=aiohttp.ClientTimeout(total=None))
        config = dict(self.source)
        config["clusters"] = [{"name": c["name"], "cluster": {"server": f"http://127.0.0.1:{port}"}}
                              for c in self.source["clusters"]]
        kubeconfig_out.write_text(yaml.safe_dump(config))
        return str(kubeconfig_out)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        where = (request.method, request.path_qs)
        self.requests.append(where)
        if self.fail(*where):
            self.failed.append(where)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": "ServiceUnavailable", "code": 503,
                                      "message": "injected by the test's proxy"}, status=503)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in _HOP_BY_HOP and k.lower() != "host"}
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         headers=headers, data=await request.read(),
                                         ssl=self.ssl if self.ssl else False) as up:
            response = web.StreamResponse(status=up.status, headers={
                k: v for k, v in up.headers.items() if k.lower() not in _HOP_BY_HOP})
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()


def failing_every(n: int, *, matching: Callable[[str, str], bool]) -> Callable[[str, str], bool]:
    """A rule failing every ``n``-th request that ``matching`` selects, starting with the first."""
    seen = [0]

    def fail(method: str, path: str) -> bool:
        if not matching(method, path):
            return False
        seen[0] += 1
        return (seen[0] - 1) % n == 0

    return fail

