"""sshkeep's SSH_ASKPASS helper: ssh runs it with a prompt; it asks the daemon, else the terminal.

ssh (with SSH_ASKPASS_REQUIRE=force) runs this for every question of a login and reads the answer
from our stdout, a pipe. The daemon answers configured passwords and passphrases (see
daemon/askpass.py); for anything else (an unknown host key, a one-time code) we ask on the
session's terminal, as ssh itself would, so the question shows on the screen and the agent
answers it with send_keys. Standard library only, and started with `python -I -S`: it runs
during logins and must start fast.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import sys
import termios
from pathlib import Path

from sshkeep.common.rundir import peer_problem, socket_problem

ASK_TIMEOUT = 15.0
MAX_LINE = 8192
# Questions answered in plain sight (ssh's host key confirmation); everything else may be secret.
_VISIBLE = re.compile(r"\(yes/no|\[y/n\]|\(y/n\)", re.IGNORECASE)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        # Never hand the token or the prompt to a socket another user could have planted.
        problem = socket_problem(Path(self._path))
        if problem is not None:
            raise ConnectionRefusedError(problem)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
            problem = peer_problem(sock, self._path)
            if problem is not None:
                raise ConnectionRefusedError(problem)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def ask_daemon(socket_path: str, token: str, prompt: str, hop: str | None) -> dict[str, object] | None:
    """The daemon's decision, or None when it cannot be asked (then the terminal is asked)."""
    body: dict[str, object] = {"token": token, "prompt": prompt[:4096]}
    if hop:
        body["hop"] = hop
    conn = _UnixConnection(socket_path, ASK_TIMEOUT)
    try:
        conn.request("POST", "/v1/askpass", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = json.loads(resp.read())
        status = resp.status
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return data if status == 200 and isinstance(data, dict) else None


def _read_line(fd: int) -> bytes:
    line = b""
    while len(line) < MAX_LINE:
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        line += chunk
        if chunk.endswith((b"\n", b"\r")):
            break
    return line.rstrip(b"\r\n")


def ask_terminal(prompt: str) -> bytes | None:
    """Ask `prompt` on the controlling terminal (no echo unless it is a yes/no question)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        visible = bool(_VISIBLE.search(prompt))
        old = termios.tcgetattr(fd)
        if not visible:
            new = termios.tcgetattr(fd)
            new[3] &= ~termios.ECHO
            termios.tcsetattr(fd, termios.TCSANOW, new)
        try:
            os.write(fd, prompt.encode())  # as ssh would: the tty turns \n into \r\n
            return _read_line(fd)
        finally:
            termios.tcsetattr(fd, termios.TCSANOW, old)
            if not visible:
                os.write(fd, b"\n")
    except (OSError, termios.error, KeyboardInterrupt):
        return None
    finally:
        os.close(fd)


def _notify(prompt: str) -> int:
    """SSH_ASKPASS_PROMPT=none: a notice (e.g. touch your security key); ssh ends us when done."""
    with contextlib.suppress(OSError):
        fd = os.open("/dev/tty", os.O_WRONLY | os.O_NOCTTY)
        try:
            os.write(fd, (prompt.rstrip("\n") + "\n").encode())
        finally:
            os.close(fd)
    return 0


def main(argv: list[str]) -> int:
    prompt = argv[0] if argv else ""
    if os.environ.get("SSH_ASKPASS_PROMPT") == "none":
        return _notify(prompt)
    token = os.environ.get("SSHKEEP_ASKPASS_TOKEN", "")
    socket_path = os.environ.get("SSHKEEP_ASKPASS_SOCKET", "")
    hop = os.environ.get("SSHKEEP_ASKPASS_HOP") or None
    decision = ask_daemon(socket_path, token, prompt, hop) if token and socket_path else None
    action = decision.get("action") if decision else "terminal"
    if action == "answer" and decision is not None and isinstance(decision.get("answer"), str):
        answer = str(decision["answer"]).encode()
    elif action == "refuse":
        # The configured secret was tried and refused: fail, so ssh reports it rather than asking on.
        return 1
    else:
        typed = ask_terminal(prompt)
        if typed is None:
            return 1
        answer = typed
    sys.stdout.buffer.write(answer + b"\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
