"""Differential test: `send_command` against plain OpenSSH, on generated commands, per shell.

A seeded generator makes a few hundred self-contained commands per shell (quoting, escapes, TABs
and other control bytes, wide characters, `\\r` rewrites, trailing spaces, lines longer than the
pane, here-documents, stderr, exit codes, multi-line scripts). The truth for each is plain
`ssh -tt host 'CMD'` against the test sshd (one ControlMaster, so it is quick), rendered by the
normaliser below; it is compared with the `output` and `exit_code` of `send_command` in one
long-lived sshkeep session per shell, over the HTTP API.

Normaliser: the raw bytes `ssh -tt` prints are rendered by `sshkeep.common.terminal.render` (the
same cell-exact terminal rendering a pane gets, 200 columns), and the one final line end is
dropped (sshkeep's `output` does not end in a newline).

Differences a plain `sh -c` would legitimately show are excluded by construction, not counted:
the generator writes no command that depends on the shell being interactive (`$-`, job control,
aliases, `$0`, prompts), on state earlier commands left (each command is self-contained: truth
runs each in a fresh shell, sshkeep in one long-lived one), on `$?` at its start, or on the
terminal's size (ssh without a local terminal sends none), or on the locale where sshkeep's zsh
setup differs from a fresh login (it sets `LC_CTYPE=C.UTF-8` under a C locale, so zsh's `printf`
pads non-ASCII text by characters there).
"""

from __future__ import annotations

import asyncio
import random
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
from sshkeep.common.terminal.render import render
from tests.instance import Instance
from tests.sshd import SshServer
from tests.support import SHELLS

SEED = 20240610
PER_SHELL = 200
OUTPUT_TARGET = 0.995

_WORDS = [
    "alpha",
    "b c",
    "x!y",
    "it's",
    'say "hi"',
    "$HOME",
    "`id`",
    "a\\b",
    "50%",
    "*",
    "~",
    "#no",
    "é",
    "漢字",
    "a\tb",
    "two\t\ttabs",
]
_PRINTF_BITS = ["\\t", "\\n", "  ", "%%", "\\\\", "\\r", "é", "漢", "🎉", "x", "end ", "\\033[1m", "\\033[0m"]


def _word(rng: random.Random) -> str:
    return rng.choice(_WORDS) if rng.random() < 0.6 else "".join(rng.choice("abcXYZ019_-.") for _ in range(5))


def generate(rng: random.Random) -> str:
    """One self-contained command."""
    kind = rng.randrange(15)
    if kind == 0:
        return "echo " + " ".join(shlex.quote(_word(rng)) for _ in range(rng.randint(1, 4)))
    if kind == 1:
        fmt = "".join(rng.choice(_PRINTF_BITS) for _ in range(rng.randint(1, 8)))
        return f"printf '{fmt}\\n'"
    if kind == 2:
        return f"(exit {rng.randint(0, 255)})"
    if kind == 3:
        a, b = rng.randint(1, 40), rng.randint(1, 9)
        return f"seq {a} {b} {a + rng.randint(0, 60)}"
    if kind == 4:
        return f"echo {shlex.quote(_word(rng))} >&2; echo out"
    if kind == 5:
        n = rng.randint(1, 3)
        return f"printf '%s' {shlex.quote(_word(rng))}" + ("; false" if n == 1 else "")
    if kind == 6:
        body = "\n".join("\t" * rng.randint(0, 2) + _word(rng) for _ in range(rng.randint(1, 4)))
        return f"cat <<'EOF'\n{body}\nEOF"
    if kind == 7:
        raw = "".join(chr(rng.choice([*range(1, 32), 127])) for _ in range(rng.randint(1, 6)))
        return f"printf '%s' {shlex.quote('a' + raw + 'b')} | od -An -c"
    if kind == 8:
        # ASCII only: zsh's printf pads by characters in sshkeep's UTF-8 locale, by bytes in C.
        n = rng.randint(150, 450)
        return f"printf '%{n}s|\\n' {shlex.quote(_word(rng).encode('ascii', 'replace').decode())}"
    if kind == 9:
        return f"for i in 1 2 {rng.randint(3, 9)}; do printf 'row %s \\n' $i; done"
    if kind == 10:
        return f"x={rng.randint(1, 99)}; echo $((x * {rng.randint(1, 99)})); [ $x -gt 50 ]"
    if kind == 11:
        return f"printf 'ab\\r%s\\n' {shlex.quote(rng.choice(['漢', 'X', 'é', 'xyz', '  ']))}"
    if kind == 12:
        return (
            "echo one\n"
            + f"echo {shlex.quote(_word(rng))}\n"
            + f"exit_code() {{ return {rng.randint(0, 9)}; }}; exit_code"
        )
    return f"printf '%s\\n' {shlex.quote(_word(rng))} | tr a-z A-Z | sed 's/^/> /'"


@dataclass
class Outcome:
    command: str
    want: tuple[str, int]
    got: tuple[str, int | None]


def truth(sshd: SshServer, shell: str, control: Path | None, command: str) -> tuple[str, int]:
    opts = sshd.ssh_options() | {"LogLevel": "ERROR"}
    if control is not None:
        opts |= {"ControlMaster": "auto", "ControlPath": str(control), "ControlPersist": "120"}
    argv = ["ssh", "-tt", "-p", str(sshd.port), "-i", str(sshd.client_key), "-l", sshd.users[shell]]
    for key, value in opts.items():
        argv += ["-o", f"{key}={value}"]
    done = subprocess.run(
        [*argv, sshd.host, command], stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False
    )
    if done.returncode == 255 and control is not None:
        # ssh's own failure code (a multiplexing hiccup loses the status): ask once more, alone.
        return truth(sshd, shell, None, command)
    text = render(done.stdout)
    return (text[:-1] if text.endswith("\n") else text), done.returncode


async def compare(instance: Instance, sshd: SshServer, shell: str, tmp: Path) -> list[Outcome]:
    rng = random.Random(f"{SEED}-{shell}")
    commands = [generate(rng) for _ in range(PER_SHELL)]
    control = tmp / f"cm-{shell}"
    truths = await asyncio.gather(
        *[asyncio.to_thread(truth, sshd, shell, control, cmd) for cmd in commands[:1]]
    )
    truths += [await asyncio.to_thread(truth, sshd, shell, control, cmd) for cmd in commands[1:]]
    outcomes: list[Outcome] = []
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        for command, want in zip(commands, truths, strict=True):
            r = await c.send_command(sid, SendCommandRequest(command=command, timeout=20))
            outcomes.append(Outcome(command, want, (r.output, r.exit_code)))
        await c.close_session(sid)
    return outcomes


async def test_send_command_matches_plain_ssh(shared: Instance, sshd: SshServer, tmp_path: Path) -> None:
    results = await asyncio.gather(*[compare(shared, sshd, shell, tmp_path) for shell in SHELLS])
    report: list[str] = []
    failures: list[str] = []
    for shell, outcomes in zip(SHELLS, results, strict=True):
        out_ok = sum(o.got[0] == o.want[0] for o in outcomes)
        code_ok = sum(o.got[1] == o.want[1] for o in outcomes)
        n = len(outcomes)
        report.append(f"{shell}: output {out_ok}/{n} ({out_ok / n:.1%}), exit code {code_ok}/{n}")
        if out_ok / n < OUTPUT_TARGET or code_ok != n:
            failures += [
                f"[{shell}] {o.command!r}: want {o.want!r} got {o.got!r}" for o in outcomes if o.got != o.want
            ]
    print("\n".join(report))
    assert not failures, "\n".join(report + failures[:20])


@pytest.mark.parametrize("shell", SHELLS)
def test_generator_is_seeded(shell: str) -> None:
    a, b = random.Random(f"{SEED}-{shell}"), random.Random(f"{SEED}-{shell}")
    first = [generate(a) for _ in range(20)]
    assert first == [generate(b) for _ in range(20)] and len(set(first)) > 10
