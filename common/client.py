"""The async API client (aiohttp over the daemon's Unix socket), used by the shim and the CLI.

Transport failures become `DaemonUnavailable`; API errors come back as the same `SshkeepError`
subclass the daemon raised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from common.errors import DaemonUnavailable, SshkeepError, from_payload
from common.models import (
    CloseResult,
    CommandResult,
    Health,
    OpenSessionRequest,
    ReconnectRequest,
    SendCommandRequest,
    SendKeysRequest,
    SendKeysResult,
    SessionInfo,
    SessionList,
    Snapshot,
    WaitForRequest,
    WaitForResult,
)

R = TypeVar("R", bound=BaseModel)


class ApiClient:
    """One connection pool to one daemon socket."""

    def __init__(self, socket_path: Path, timeout: float = 120.0) -> None:
        self.socket_path = socket_path
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=5)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket_path)),
                timeout=self._timeout,
                base_url="http://localhost",
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        model: type[R],
        body: BaseModel | None = None,
        params: dict[str, str] | None = None,
    ) -> R:
        data = body.model_dump_json(exclude_none=True) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self._http().request(method, path, data=data, params=params, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnavailable(f"no sshkeep daemon answers on {self.socket_path} ({exc})") from exc
        except aiohttp.ClientError as exc:
            raise DaemonUnavailable(
                f"lost the connection to the daemon on {self.socket_path}: {exc}"
            ) from exc
        except TimeoutError as exc:
            raise DaemonUnavailable(f"the daemon on {self.socket_path} did not answer in time") from exc
        try:
            payload: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SshkeepError(f"daemon sent a non-JSON reply (HTTP {status})") from exc
        if status >= 400:
            err = payload.get("error", {}) if isinstance(payload, dict) else {}
            raise from_payload(err if isinstance(err, dict) else {}, status)
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise SshkeepError(f"daemon reply does not match {model.__name__}: {exc}") from exc

    # --- typed calls ------------------------------------------------------------------------------

    async def health(self) -> Health:
        return await self.request("GET", "/v1/health", Health)

    async def list_sessions(self) -> SessionList:
        return await self.request("GET", "/v1/sessions", SessionList)

    async def open_session(self, req: OpenSessionRequest) -> SessionInfo:
        return await self.request("POST", "/v1/sessions", SessionInfo, req)

    async def get_session(self, sid: str) -> SessionInfo:
        return await self.request("GET", f"/v1/sessions/{sid}", SessionInfo)

    async def close_session(self, sid: str) -> CloseResult:
        return await self.request("DELETE", f"/v1/sessions/{sid}", CloseResult)

    async def send_command(self, sid: str, req: SendCommandRequest) -> CommandResult:
        return await self.request("POST", f"/v1/sessions/{sid}/commands", CommandResult, req)

    async def get_command(
        self, sid: str, command_id: str, offset: int = 0, limit: int | None = None, wait: float = 0
    ) -> CommandResult:
        params = {"offset": str(offset), "wait": str(wait)}
        if limit is not None:
            params["limit"] = str(limit)
        return await self.request(
            "GET", f"/v1/sessions/{sid}/commands/{command_id}", CommandResult, params=params
        )

    async def send_keys(self, sid: str, req: SendKeysRequest) -> SendKeysResult:
        return await self.request("POST", f"/v1/sessions/{sid}/keys", SendKeysResult, req)

    async def interrupt(self, sid: str) -> CommandResult:
        return await self.request("POST", f"/v1/sessions/{sid}/interrupt", CommandResult)

    async def wait_for(self, sid: str, req: WaitForRequest) -> WaitForResult:
        return await self.request("POST", f"/v1/sessions/{sid}/wait", WaitForResult, req)

    async def reconnect(self, sid: str, req: ReconnectRequest) -> SessionInfo:
        return await self.request("POST", f"/v1/sessions/{sid}/reconnect", SessionInfo, req)

    async def snapshot(self, sid: str, lines: int | None = None) -> Snapshot:
        params = {"lines": str(lines)} if lines else None
        return await self.request("GET", f"/v1/sessions/{sid}/screen", Snapshot, params=params)
