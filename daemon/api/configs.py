"""Connection routes: the configured entries, their info files, and the askpass exchange.

`GET /v1/configs` lists every config.yml entry (never a secret), the broken ones with the error
naming entry and field, and the concrete `Host` aliases of ~/.ssh/config (marked as such).
`GET /v1/configs/{name}/info` returns an entry's info file (mcp-ssh-interactive's path rules:
relative → `<config dir>/info/`, `~` and `/` absolute). `POST /v1/askpass` serves the SSH_ASKPASS
helper (see `sshkeep.daemon.sessions.askpass`).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from sshkeep.common.config import LoadedConfig, resolve_info_path, ssh_config_aliases
from sshkeep.common.errors import ConfigError, NotFound
from sshkeep.common.models.configs import (
    AskpassReply,
    AskpassRequest,
    ConfigEntry,
    ConfigEntryError,
    ConfigList,
    ServerInfo,
)
from sshkeep.daemon.api.core import Call, endpoint, manager
from sshkeep.daemon.api.peer import peer_of

MAX_INFO_BYTES = 1024 * 1024

routes = web.RouteTableDef()


def config_list(cfg: LoadedConfig, aliases: list[str]) -> ConfigList:
    """The listing: config entries first, then ssh_config aliases no entry shadows."""
    entries = [
        ConfigEntry(
            name=conn.name,
            source="config",
            host=conn.host,
            user=conn.user,
            port=conn.port,
            description=conn.description,
            has_info=conn.info_file is not None,
            proxy_jump=conn.proxy_jump,
            secrets=sorted(cfg.secrets_for(conn)),
        )
        for conn in cfg.connections.values()
    ]
    taken = set(cfg.connections) | set(cfg.errors) | cfg.names
    entries += [ConfigEntry(name=alias, source="ssh_config") for alias in aliases if alias not in taken]
    errors = [ConfigEntryError(name=name, message=message) for name, message in cfg.errors.items()]
    errors += [ConfigEntryError(name=name, message=message) for name, message in cfg.secret_errors.items()]
    hint = None
    if cfg.file_error is not None:
        hint = f"Fix {cfg.path}; it is re-read when it changes."
    elif errors:
        hint = "Broken entries cannot be opened until config.yml is fixed; the others work."
    elif not entries:
        hint = f"No connections configured: add them to {cfg.path}, or open_session with user@host."
    return ConfigList(
        config_file=str(cfg.path),
        configs=entries,
        errors=errors,
        file_error=cfg.file_error,
        secrets=sorted(cfg.secrets),
        hint=hint,
    )


@endpoint(routes, "list_available_configs")
async def list_configs(request: web.Request, call: Call) -> ConfigList:
    m = manager(request)
    cfg = await asyncio.to_thread(m.config.current)
    aliases = await asyncio.to_thread(ssh_config_aliases)
    return config_list(cfg, aliases)


def read_info(cfg: LoadedConfig, name: str) -> ServerInfo:
    """Entry `name` with its info file's text; clear errors for every way that can fail."""
    conn = cfg.get(name)
    if conn.info_file is None:
        raise NotFound(
            f"connection {name!r} has no info_file",
            hint=f"Add `info_file: {name}.md` to the entry and put notes in {cfg.info_dir}/{name}.md.",
        )
    path = resolve_info_path(conn.info_file, cfg.info_dir)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INFO_BYTES + 1)
    except FileNotFoundError as exc:
        raise NotFound(
            f"info file of {name!r} not found: {path}",
            hint=f"Create {path}, or fix connections.{name}.info_file "
            "(relative paths are under the info/ dir next to config.yml).",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read info file of {name!r} ({path}): {exc.strerror or exc}") from exc
    if len(data) > MAX_INFO_BYTES:
        raise ConfigError(f"info file of {name!r} ({path}) is larger than {MAX_INFO_BYTES} bytes")
    return ServerInfo(
        name=conn.name,
        host=conn.host,
        user=conn.user,
        port=conn.port,
        description=conn.description,
        info_file=str(path),
        content=data.decode("utf-8", errors="replace"),
        secrets=sorted(cfg.secrets_for(conn)),
    )


@endpoint(routes, "get_server_info")
async def server_info(request: web.Request, call: Call) -> ServerInfo:
    cfg = await asyncio.to_thread(manager(request).config.current)
    return await asyncio.to_thread(read_info, cfg, call.params["config_name"])


def _pid(request: web.Request) -> int | None:
    peer = peer_of(request)
    return (peer.pid or None) if peer is not None else None


@endpoint(routes, "askpass")
async def askpass(request: web.Request, call: Call) -> AskpassReply:
    req = call.body(AskpassRequest)
    m = manager(request)
    sid = m.auth.session_of(req.token)
    ssh_pid = await m.pane_pid(sid) if sid is not None else None
    return m.auth.decide(req.token, req.prompt, req.hop, _pid(request), ssh_pid)
