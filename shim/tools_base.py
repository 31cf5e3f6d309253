"""What every group of MCP tools needs: the table-derived tool decorator and parameters, the API
client with daemon auto-start, `host` in place of `session_id`, one error format, lean schemas and
results, and progress while a call waits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import structlog
from mcp.server import MCPServer
from mcp.server.elicitation import render_elicitation_schema
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import (
    CallToolResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    TextContent,
    ToolAnnotations,
)
from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo

from sshkeep.common.client import ApiClient
from sshkeep.common.errors import (
    ApprovalRequired,
    CallInterrupted,
    DaemonUnavailable,
    SessionBusy,
    SshkeepError,
    UnsafeRuntimeDir,
)
from sshkeep.common.models.base import MAX_WAIT_SECONDS, Reply
from sshkeep.common.models.policy import APPROVAL_ID_PATTERN, Approval, ApproveRequest, DeclineRequest
from sshkeep.common.models.sessions import CommandResult, SessionForHostRequest
from sshkeep.common.operations import OPERATIONS, ToolKind
from sshkeep.common.paths import Paths
from sshkeep.shim.autostart import ensure_daemon
from sshkeep.shim.early import EarlyStart
from sshkeep.shim.server import SshkeepServer as SshkeepServer  # re-exported: the tool layer's server

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])

ANNOTATIONS: dict[ToolKind, ToolAnnotations] = {
    "reads": ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
    ),
    "acts": ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
    ),
    "opens": ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
    ),
}

# The operation whose body defines `host` when a tool takes it in place of `session_id`.
HOST_OPERATION = "session_for_host"
# Waits an MCP call may ask for beyond one daemon call's limit, when the client sends a progress
# token (its idle clock restarts on every progress notification); tunable down with
# settings.mcp_max_wait_seconds in config.yml.
LONG_WAIT_SECONDS = 600.0
LONG_WAIT_FIELDS = frozenset({("send_command", "timeout"), ("get_command", "wait"), ("wait_for", "timeout")})
# Replies carry a large text field (output, screen, file content) once: in the text content.
TEXT_ONLY_OVER = 512
# Progress: the first notification within this many seconds, then at least this often.
FIRST_PROGRESS = 0.8
PROGRESS_EVERY = 2.0


def tool(server: MCPServer[Any], op_id: str) -> Callable[[F], F]:
    """Register the decorated function as the MCP tool of operation `op_id` (same name, its
    annotations from the table of operations)."""
    op = OPERATIONS[op_id]
    if op.tool is None:
        raise ValueError(f"operation {op_id!r} is not an MCP tool in the table")

    def register(fn: F) -> F:
        if fn.__name__ != op_id:
            raise ValueError(f"tool function {fn.__name__!r} must be named like its operation {op_id!r}")
        assert op.tool is not None
        text = " ".join(inspect.cleandoc(fn.__doc__ or op.summary).split())  # one line, no indents
        # Unstructured to the SDK: it would derive a full output schema from the return annotation
        # (half of the tools' registration time) only for `lean_schemas` to cut it down to
        # top-level types; the published one comes from the table instead (`reply_schema`).
        add = server.tool(
            name=op_id, description=text, annotations=ANNOTATIONS[op.tool], structured_output=False
        )
        add(fn)
        return fn

    return register


def param(op_id: str, name: str) -> Any:
    """The FieldInfo of a parameter of operation `op_id` (path, query or body model), so each
    bound and description is written once, in `sshkeep.common.models`. A long-wait field gets the
    MCP bound (see LONG_WAIT_FIELDS); the daemon's own bound stays in its model."""
    op = OPERATIONS[op_id]
    for model in (op.path_params, op.query, op.body):
        if model is not None and name in model.model_fields:
            info = model.model_fields[name]
            if (op_id, name) in LONG_WAIT_FIELDS:
                return Field(
                    ge=0,
                    le=LONG_WAIT_SECONDS,
                    description=f"Seconds to wait (over {MAX_WAIT_SECONDS:g}: with progress)",
                )
            return info
    raise KeyError(f"operation {op_id!r} has no parameter {name!r}")


def optional_session() -> Any:
    """`session_id` of a tool that also takes `host`: optional, same pattern and description."""
    base = OPERATIONS["send_command"].path_params
    assert base is not None
    info = base.model_fields["session_id"]
    return Field(
        pattern=_meta(info, "pattern"),
        max_length=_meta(info, "max_length"),
        description=info.description,
    )


def host_param() -> Any:
    body = OPERATIONS[HOST_OPERATION].body
    assert body is not None
    info = body.model_fields["host"]
    return Field(
        min_length=_meta(info, "min_length"),
        max_length=_meta(info, "max_length"),
        description=info.description,
    )


def _meta(info: FieldInfo, attr: str) -> Any:
    for m in info.metadata:
        value = getattr(m, attr, None)
        if value is not None:
            return value
    return None


def has_progress_token(ctx: Context) -> bool:
    try:
        meta = ctx.request_context.meta
    except (AttributeError, ValueError):
        return False
    if not meta:
        return False
    getter = getattr(meta, "get", None)
    if getter is None:
        return getattr(meta, "progress_token", None) is not None
    return getter("progress_token") is not None or getter("progressToken") is not None


class Progress:
    """MCP progress for one call: the first notification soon, then at least every 2 s."""

    def __init__(self, ctx: Context, total: float) -> None:
        self.ctx = ctx
        self.total = total
        self.start = time.monotonic()
        self.sent = 0
        self.last = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def next_chunk(self, remaining: float) -> float:
        """How long the next daemon call may wait so the next notification is on time."""
        due = FIRST_PROGRESS if self.sent == 0 else self.last + PROGRESS_EVERY * 0.9
        return max(0.05, min(remaining, due - self.elapsed()))

    async def report(self, message: str) -> None:
        self.last = self.elapsed()
        self.sent += 1
        await self.ctx.report_progress(round(self.last, 1), self.total, message)


FORM_KEY = "sshkeep_approval"


class ApprovalForm(BaseModel):
    """The yes/no form of an approval elicitation."""

    approve: bool = Field(description="Run exactly this command now?")


def can_elicit(ctx: Context | None) -> bool:
    """Whether the MCP client declared form-mode elicitation."""
    if ctx is None:
        return False
    try:
        caps = ctx.client_capabilities
    except (AttributeError, ValueError, LookupError):
        return False
    return caps is not None and caps.elicitation is not None


def elicitation_message(a: Approval) -> str:
    return (
        f"sshkeep asks before running this on {a.host} (session {a.session_id}, {a.operation}):\n\n"
        f"{a.command}\n\n"
        f"Why: {a.reason}\n"
        "Approve runs exactly this, once. Decline (or no answer) runs nothing."
    )


@dataclass
class Tools:
    """Shared by the tool modules: call the daemon (starting it if needed) and shape results."""

    client: ApiClient
    paths: Paths
    _starting: asyncio.Task[object] | None = field(default=None, init=False, repr=False)

    def start_daemon_early(self, started: EarlyStart | None = None) -> None:
        """Check (or start) the daemon now, while the MCP client is still initialising, so the
        first tool call does not pay for the daemon's start-up (`started`: the check the shim
        made as it started, whose daemon is waited for instead of spawning another)."""
        self._starting = asyncio.create_task(self._ensure_quietly(started), name="sshkeep-daemon-start")

    async def _ensure_quietly(self, started: EarlyStart | None) -> object:
        try:
            return await ensure_daemon(self.client, self.paths, started)
        except SshkeepError as err:  # the first tool call tries again and reports it
            log.warning("daemon_start_failed", error=err.message)
            return None

    async def call(self, fn: Callable[[], Awaitable[M]]) -> M:
        if self._starting is not None:
            await asyncio.shield(self._starting)
        try:
            try:
                return await fn()
            except CallInterrupted:
                # Not repeated (it may have been carried out), but the next call finds a daemon.
                with contextlib.suppress(SshkeepError):
                    await ensure_daemon(self.client, self.paths)
                raise
            except (DaemonUnavailable, UnsafeRuntimeDir):
                await ensure_daemon(self.client, self.paths)
                return await fn()
        except SshkeepError as err:
            raise FormattedError(format_error(err)) from err

    def max_wait(self) -> float:
        # Imported here: config.yml's parser (PyYAML, ~20 ms with it) is needed only for a wait over
        # one call's limit, not for the tool list an agent waits for after `initialize`.
        from sshkeep.common.config import ConfigSource

        try:
            return ConfigSource(self.paths.config_file).current().tunables.mcp_max_wait_seconds
        except Exception:
            return LONG_WAIT_SECONDS

    def check_wait(self, ctx: Context, tool_name: str, name: str, value: float) -> None:
        """Waits over one daemon call's limit need a progress token (and stay under the setting)."""
        if value <= MAX_WAIT_SECONDS:
            return
        if not has_progress_token(ctx):
            raise FormattedError(
                f"[bad_request] {tool_name}: {name}={value:g} is over {MAX_WAIT_SECONDS:g} s, and this call "
                "has no progress token to keep it alive\n"
                f"Next: call {tool_name} with {name}={MAX_WAIT_SECONDS:g} and repeat while status is "
                "running (get_command follows a running command)."
            )
        limit = self.max_wait()
        if value > limit:
            raise FormattedError(
                f"[bad_request] {tool_name}: {name}={value:g} is over settings.mcp_max_wait_seconds "
                f"({limit:g})\nNext: use {name}<={limit:g} and repeat while status is running."
            )

    async def session_for(self, session_id: str | None, host: str | None) -> str:
        """The session a tool call is for: `session_id`, or an idle (else new) session of `host`."""
        if (session_id is None) == (host is None):
            raise FormattedError(
                "[bad_request] give exactly one of session_id and host\n"
                "Next: pass host (a name from list_available_configs) to use or open its session, or "
                "the session_id from an earlier reply."
            )
        if session_id is not None:
            return session_id
        assert host is not None
        info = await self.call(lambda: self.client.session_for_host(SessionForHostRequest(host=host)))
        if info.question is not None:
            raise FormattedError(
                f"[session_not_ready] session {info.session_id} for {host} waits at login: "
                f"{info.question.text}\nNext: {info.hint or 'answer it with send_keys'}"
            )
        return info.session_id

    async def on_host(self, session_id: str | None, host: str | None, fn: Callable[[str], Awaitable[M]]) -> M:
        """Run `fn(sid)`; with `host`, once more in another session if the chosen one became busy."""
        sid = await self.session_for(session_id, host)
        try:
            return await fn(sid)
        except FormattedError as err:
            if host is None or not isinstance(err.__cause__, SessionBusy):
                raise
            return await fn(await self.session_for(None, host))

    async def guarded(self, ctx: Context | None, fn: Callable[[], Awaitable[M]]) -> M | InputRequiredResult:
        """Call `fn`; when the policy asks a person first and the client can elicit, show the person
        the exact command in a yes/no form, record the answer (route mcp_elicitation) and retry.

        Protocol 2026-07-28 and later carry the form inside an `InputRequiredResult` (the client
        asks its user and calls the tool again with the answer); earlier ones send it mid-call.
        Without elicitation, or without an answer, the call fails closed: the reply stays
        approval_required and its hint names `sshkeep approve ID`.
        """
        note = await self._take_answer(ctx)  # a retry carrying the person's answer (2026-07-28+)
        first = await self._attempt(fn, elicit=note is None)
        if isinstance(first, str):  # approval required and not yet asked: show the form
            form = await self._elicit(ctx, first)
            if isinstance(form, InputRequiredResult):
                return form
            note = form
            first = await self._attempt(fn, elicit=False)
        assert not isinstance(first, str)
        if note == "declined" and isinstance(first, CommandResult) and first.status == "approval_required":
            first.hint = (first.hint or "") + " The person declined it in the approval form."
        return first

    async def _attempt(self, fn: Callable[[], Awaitable[M]], elicit: bool = True) -> M | str:
        """`fn`'s reply, or the approval id when the daemon asks a person first (and `elicit`)."""
        try:
            res = await self.call(fn)
        except ToolError as exc:
            cause = exc.__cause__
            if (
                elicit
                and isinstance(cause, ApprovalRequired)
                and isinstance(cause.context.get("approval_id"), str)
            ):
                return str(cause.context["approval_id"])
            raise
        if elicit and isinstance(res, CommandResult) and res.status == "approval_required" and res.approval:
            return res.approval.approval_id
        return res

    async def _elicit(self, ctx: Context | None, approval_id: str) -> str | InputRequiredResult:
        """`approved`, `declined`, `none` (no answer: fail closed), or the form to hand the client."""
        if not can_elicit(ctx):
            return "none"
        assert ctx is not None
        try:
            listing = await self.client.list_approvals()
            approval = next(a for a in listing.approvals if a.approval_id == approval_id)
            message = elicitation_message(approval)
            if not ctx.session.can_send_request:
                params = ElicitRequestFormParams(
                    message=message, requested_schema=render_elicitation_schema(ApprovalForm)
                )
                return InputRequiredResult(
                    input_requests={FORM_KEY: ElicitRequest(params=params)}, request_state=approval_id
                )
            answer = await ctx.elicit(message, ApprovalForm)
        except Exception as exc:  # no answer of any kind: fail closed
            log.warning("elicitation_failed", approval_id=approval_id, error=f"{type(exc).__name__}: {exc}")
            return "none"
        approve = answer.action == "accept" and answer.data.approve
        return await self._record(approval_id, approve, answered=answer.action in ("accept", "decline"))

    async def _take_answer(self, ctx: Context | None) -> str | None:
        """On a retry that carries the person's answer to our form: record it (approve or decline)."""
        if ctx is None:
            return None
        try:
            responses = ctx.input_responses  # None on a first call: the state is not looked at
            if not responses or FORM_KEY not in responses:
                return None
            state = ctx.request_state
        except (AttributeError, ValueError, LookupError):
            return None
        if not state or not re.match(APPROVAL_ID_PATTERN, state):
            return None
        answer = responses[FORM_KEY]
        if not isinstance(answer, ElicitResult):
            return "none"
        content = answer.content or {}
        approve = answer.action == "accept" and content.get("approve") is True
        return await self._record(state, approve, answered=answer.action in ("accept", "decline"))

    async def _record(self, approval_id: str, approve: bool, answered: bool) -> str:
        try:
            if approve:
                await self.call(
                    lambda: self.client.approve(approval_id, ApproveRequest(route="mcp_elicitation"))
                )
                return "approved"
            if answered:
                await self.call(
                    lambda: self.client.decline(approval_id, DeclineRequest(route="mcp_elicitation"))
                )
                return "declined"
        except ToolError as exc:  # e.g. expired meanwhile: the retry asks again, fail closed
            log.warning("elicitation_answer_not_recorded", approval_id=approval_id, error=str(exc))
        return "none"

    @staticmethod
    def result(model: BaseModel, text: str) -> CallToolResult:
        """The tool's result: `text`, and the reply as structured content: the daemon's JSON as it
        came when the model was validated from it (the SDK checks it against the output schema),
        with large text fields left to the text content."""
        wire = model.wire if isinstance(model, Reply) else None
        if wire is not None:
            data = {**wire}  # what `_text_only` changes is copied: the model keeps its JSON
            if isinstance(data.get("result"), dict):
                data["result"] = {**data["result"]}
        else:
            data = model.model_dump(mode="json")
        _text_only(data)
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _text_only(data: dict[str, Any]) -> None:
    """Empty large text fields (here and in a nested `result`): the text content carries them.

    A file's content (over 512 characters) and a full-screen program's screen go once; a command's
    `output` stays in both (clients page it from the structured result)."""
    moved = []
    limits = {"content": TEXT_ONLY_OVER, "screen": 0} if "command_id" in data else {"content": TEXT_ONLY_OVER}
    for name, over in limits.items():
        value = data.get(name)
        if isinstance(value, str) and len(value) > over:
            data[name] = ""
            moved.append(name)
    if moved:
        data["in_text"] = moved
    nested = data.get("result")
    if isinstance(nested, dict):
        # The result inside a send_keys reply: its null fields say nothing.
        for key in [k for k, v in nested.items() if v is None and k != "exit_code"]:
            del nested[key]
        _text_only(nested)


class FormattedError(ToolError):
    """A tool error whose text is already `[code] message` + `Next: hint`."""


def format_error(err: SshkeepError) -> str:
    code = str(err.context.get("code", err.code)) if err.context else err.code
    return f"[{code}] {err.message}\nNext: {err.hint}"


# --- errors of the SDK's own making (argument validation, unknown tools, crashes) -------------------


def _bound_text(e: Any) -> str | None:
    ctx = e.get("ctx") or {}
    for key, word in (("le", "<="), ("lt", "<"), ("ge", ">="), ("gt", ">")):
        if key in ctx:
            return f"must be {word} {ctx[key]}"
    return None


def validation_text(tool_name: str, exc: ValidationError, schema: dict[str, Any]) -> str:
    """Pydantic's errors about tool arguments as `[bad_request] …` + `Next: …`."""
    parts: list[str] = []
    fields: list[str] = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "arguments"
        fields.append(loc)
        kind = e["type"]
        if kind == "missing":
            what = "required"
        elif kind == "extra_forbidden":
            known = ", ".join(sorted(schema.get("properties", {})))
            what = f"unknown argument (known: {known})"
        elif kind in ("less_than_equal", "less_than", "greater_than_equal", "greater_than"):
            what = _bound_text(e) or e["msg"]
        elif kind == "string_too_short":
            what = "must not be empty" if (e.get("ctx") or {}).get("min_length") == 1 else e["msg"]
        elif kind == "string_pattern_mismatch":
            what = f"{e.get('input')!r} does not match {(e.get('ctx') or {}).get('pattern')}"
        else:
            what = str(e["msg"]).replace("Input should be", "must be").replace("Value error, ", "")
        parts.append(f"{loc}: {what}")
    required = schema.get("required", [])
    need = f" (required: {', '.join(required)})" if required else ""
    return (
        f"[bad_request] {tool_name}: {'; '.join(parts)}\n"
        f"Next: fix {', '.join(dict.fromkeys(fields))} and call {tool_name} again{need}."
    )


def error_text(server: MCPServer[Any], tool_name: str, exc: BaseException) -> str:
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 10:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for e in chain:
        if isinstance(e, FormattedError):
            return str(e)
    for e in chain:
        if isinstance(e, SshkeepError):
            return format_error(e)
    for e in chain:
        if isinstance(e, ValidationError):
            found = server._tool_manager.get_tool(tool_name)
            return validation_text(tool_name, e, found.parameters if found is not None else {})
    if server._tool_manager.get_tool(tool_name) is None:
        return (
            f"[not_found] no tool named {tool_name!r}\nNext: list the tools (tools/list) and use one of them."
        )
    log.error("tool_crashed", tool=tool_name, exc_info=exc)
    root = chain[-1]
    return (
        f"[internal_error] {tool_name} failed unexpectedly ({type(root).__name__})\n"
        "Next: retry once; if it fails again, `sshkeep status` shows where the daemon log is."
    )


# --- lean schemas -----------------------------------------------------------------------------------


def lean_input(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema without pydantic's titles, and `T | None = None` said as plain `T`."""
    props = {}
    for name, prop in schema.get("properties", {}).items():
        # Titles repeat the name and minLength 1 says nothing a model needs. The session id keeps
        # its pattern (a client can check it before calling); the terminal's the daemon checks.
        drop = {"title"} | ({"pattern"} if name == "terminal" else set())
        if name == "session_id":
            drop.add("maxLength")  # its pattern bounds the length already
        branches = prop.get("anyOf")
        if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
            other = next(b for b in branches if b != {"type": "null"})
            prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **other}
            if prop.get("default", "") is None:
                del prop["default"]
        if prop.get("minLength") == 1:
            drop.add("minLength")
        props[name] = _drop_titles({k: v for k, v in prop.items() if k not in drop})
    out = {k: _drop_titles(v) for k, v in schema.items() if k not in ("title", "properties")}
    out["properties"] = props
    return out


def _drop_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_titles(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_drop_titles(v) for v in node]
    return node


_PLAIN: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
_SEQUENCES = (list, tuple, set, frozenset)


@functools.cache
def reply_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The published output schema of a tool replying with `model`: what `lean_output` makes of
    the model's JSON schema, read off the fields' annotations when each is a plain one (no JSON
    schema generated: ~3 ms a model at start-up), else from the JSON schema itself."""
    props: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        renamed = info.alias or info.validation_alias or info.serialization_alias
        kind = None if renamed else _annotation_type(info.annotation)
        if kind is None:
            return lean_output(model.model_json_schema())
        props[name] = kind
    return {"type": "object", "properties": props}


def _annotation_type(annotation: Any) -> dict[str, Any] | None:
    """`_json_type` of the schema pydantic gives a field of this annotation, for the plain ones
    (scalars, literals, lists, dicts, models, and unions of them); None for any other."""
    union = get_origin(annotation) in (Union, UnionType)
    kinds: list[str] = []
    for arm in get_args(annotation) if union else (annotation,):
        origin = get_origin(arm)
        if arm in _PLAIN:
            kind = _PLAIN[arm]
        elif origin is Literal:
            kind = "string"  # an enum or a const: `_json_type` calls either a string
        elif origin in _SEQUENCES or arm in _SEQUENCES:
            kind = "array"
        elif origin is dict or arm is dict or (isinstance(arm, type) and issubclass(arm, BaseModel)):
            kind = "object"
        else:
            return None
        if kind not in kinds:
            kinds.append(kind)
    return _one_type(kinds)


def lean_output(schema: dict[str, Any]) -> dict[str, Any]:
    """An output schema of top-level field names and JSON types only (clients validate replies
    against it; what the fields mean is in the tool description and the text reply)."""
    props: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        props[name] = _json_type(prop)
    return {"type": "object", "properties": props}


def _json_type(prop: dict[str, Any]) -> dict[str, Any]:
    types: list[str] = []
    for branch in prop.get("anyOf", [prop]):
        if "$ref" in branch:
            kind = "object"
        elif "enum" in branch or "const" in branch:
            kind = "string"
        else:
            kind = str(branch.get("type", ""))
        if kind and kind not in types:
            types.append(kind)
    return _one_type(types)


def _one_type(kinds: list[str]) -> dict[str, Any]:
    """The `type` of a property that may be any of `kinds` (JSON types, in order, no repeats)."""
    if not kinds:
        return {}
    if "number" in kinds and "integer" in kinds:
        kinds = [k for k in kinds if k != "integer"]
    return {"type": kinds[0] if len(kinds) == 1 else kinds}
