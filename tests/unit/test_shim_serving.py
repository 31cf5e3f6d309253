"""What the shim's server does per message: the era decided by looking ahead on our own stream (no
relay task), no no-op tracing span, and the daemon's reply not validated a second time."""

from __future__ import annotations

import asyncio
import json
import typing
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.server.mcpserver.utilities.func_metadata import func_metadata
from opentelemetry import trace
from pydantic import BaseModel, Field

from sshkeep.common.client import ApiClient
from sshkeep.common.models.base import Reply
from sshkeep.common.operations import OPERATIONS
from sshkeep.common.paths import resolve_paths
from sshkeep.shim import mcp_server
from sshkeep.shim.stdio import AHEAD_LIMIT, WireIn, WireOut, sdk_era_loops
from sshkeep.shim.tools_base import LONG_WAIT_SECONDS, Tools, lean_output, reply_schema


class _NoWrites(WireOut):
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    async def write_line(self, data: bytes) -> None:
        self.lines.append(data)


def _wire(lines: list[dict[str, Any]]) -> tuple[WireIn, _NoWrites]:
    reader = asyncio.StreamReader()
    for line in lines:
        reader.feed_data(json.dumps(line).encode() + b"\n")
    reader.feed_eof()
    out = _NoWrites()
    return WireIn(reader, out), out


async def _messages(wire: WireIn) -> list[types.JSONRPCMessage]:
    out = []
    async for item in wire:
        assert not isinstance(item, Exception)
        out.append(item.message)
    return out


def _note(i: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/x", "params": {"i": i}}


def _request(rid: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "ping"}


async def test_the_opening_request_is_read_again_with_what_came_before_it_in_order() -> None:
    wire, out = _wire([_note(0), _note(1), _request(1), _request(2)])
    opening = await wire.opening_request()
    assert isinstance(opening, types.JSONRPCRequest) and opening.id == 1
    got = await _messages(wire)
    assert [m.model_dump(by_alias=True, exclude_unset=True) for m in got] == [
        _note(0),
        _note(1),
        _request(1),
        _request(2),
    ]
    assert out.lines == []


async def test_only_the_first_frames_before_the_opening_request_are_kept() -> None:
    wire, _ = _wire([_note(i) for i in range(AHEAD_LIMIT + 3)] + [_request(7)])
    assert (await wire.opening_request()) is not None
    got = await _messages(wire)
    assert len(got) == AHEAD_LIMIT + 1
    assert isinstance(got[-1], types.JSONRPCRequest) and got[-1].id == 7


async def test_no_request_before_the_end_of_input() -> None:
    wire, _ = _wire([_note(0)])
    assert (await wire.opening_request()) is None
    assert await _messages(wire) == [types.JSONRPCNotification.model_validate(_note(0))]


def test_the_sdk_has_the_serving_loops_the_shim_runs_on_its_streams() -> None:
    # Without them the shim still serves (Server.run), one relay task per message slower: an SDK
    # upgrade that renames them shows here.
    assert sdk_era_loops() is not None


def _server(tmp_path: Path) -> Any:
    paths = resolve_paths({"SSHKEEP_HOME": str(tmp_path)})
    return mcp_server.build_server(paths, ApiClient(paths.socket))


def test_no_tracing_span_per_message_unless_tracing_is_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def names(server: Any) -> list[str]:
        return [type(m).__name__ for m in server.middleware]

    assert "OpenTelemetryMiddleware" not in names(_server(tmp_path))

    class Provider(trace.NoOpTracerProvider):
        pass

    monkeypatch.setattr(trace, "get_tracer_provider", lambda: Provider())
    assert "OpenTelemetryMiddleware" in names(_server(tmp_path))


def test_tools_publish_output_schemas_but_leave_the_reply_to_the_api_client(tmp_path: Path) -> None:
    tools = _server(tmp_path)._tool_manager.list_tools()
    assert tools
    for tool in tools:
        assert tool.output_schema is not None and tool.output_schema.get("properties"), tool.name
        assert tool.fn_metadata.output_model is None, tool.name
        # Safe because every tool returns its structured content itself (a CallToolResult built by
        # Tools.result), or the form of an approval: nothing is left for the SDK to convert.
        returns = typing.get_type_hints(tool.fn, include_extras=True)["return"]
        for kind in typing.get_args(returns) if typing.get_origin(returns) is typing.Union else (returns,):
            if kind is not types.InputRequiredResult:
                assert typing.get_origin(kind) is typing.Annotated, (tool.name, kind)
                assert typing.get_args(kind)[0] is types.CallToolResult, (tool.name, kind)


def test_published_output_schemas_are_what_the_sdk_would_derive_cut_to_top_level_types(
    tmp_path: Path,
) -> None:
    # The SDK is told the tools are unstructured (it would derive a full schema only for the shim to
    # cut it down): what each tool publishes, from the table's reply model, is that cut-down schema
    # of what the SDK derives from the tool function's return annotation.
    tools = _server(tmp_path)._tool_manager.list_tools()
    for tool in tools:
        skip = [tool.context_kwarg] if tool.context_kwarg else []
        derived = func_metadata(tool.fn, skip_names=skip).output_schema
        assert derived is not None, tool.name
        assert tool.output_schema == lean_output(derived), tool.name


def test_reply_schemas_read_off_annotations_match_the_json_schema() -> None:
    replies = {op.reply for op in OPERATIONS.values() if op.reply is not None}
    assert len(replies) > 20
    for model in replies:
        assert reply_schema(model) == lean_output(model.model_json_schema()), model.__name__

    class Odd(Reply):  # an annotation the fast path does not know: the JSON schema decides
        when: typing.Any = None
        pairs: dict[str, int] = Field(default_factory=dict)
        maybe: int | float | None = None

    class Aliased(BaseModel):  # the wire name is the alias: the JSON schema decides
        x: int = Field(0, alias="X")

    assert reply_schema(Odd) == lean_output(Odd.model_json_schema())
    assert reply_schema(Odd)["properties"]["when"] == {}
    assert reply_schema(Odd)["properties"]["maybe"] == {"type": ["number", "null"]}
    assert reply_schema(Aliased) == {"type": "object", "properties": {"X": {"type": "integer"}}}


def test_a_wait_limit_comes_from_config_yml_when_asked(tmp_path: Path) -> None:
    """The tool modules load config.yml's parser only when a long wait asks for its limit."""
    paths = resolve_paths({"SSHKEEP_HOME": str(tmp_path), "HOME": str(tmp_path)})
    tools = Tools(ApiClient(paths.socket), paths)
    assert tools.max_wait() == LONG_WAIT_SECONDS  # no config.yml: the default
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text("settings:\n  mcp_max_wait_seconds: 123\n")
    assert tools.max_wait() == 123
