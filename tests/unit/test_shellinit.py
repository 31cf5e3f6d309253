"""sshkeep.common.terminal.shellinit: the setup lines, as text and run in local bash/zsh/dash/ash."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sshkeep.common.terminal.commandline import line_ends
from sshkeep.common.terminal.markers import Marker, find_markers
from sshkeep.common.terminal.shellinit import setup_lines

NONCE = "0123456789abcdef"

# Interactive shells without any rc file; their prompts go to stderr (ash: stdout).
SHELL_ARGV = {
    "bash": ["bash", "--norc", "--noprofile", "-i"],
    "zsh": ["zsh", "-f", "-i"],
    "dash": ["dash", "-i"],
    "ash": ["busybox", "ash", "-i"],
}
PARSE_ARGV = {
    "bash": ["bash", "--norc", "--noprofile", "-n", "-c"],
    "zsh": ["zsh", "-f", "-n", "-c"],
    "dash": ["dash", "-n", "-c"],
    "ash": ["busybox", "ash", "-n", "-c"],
}


def run_shell(shell: str, script: str, tmp_path: Path) -> list[Marker]:
    """Feed `script` to an interactive `shell`; return our markers from everything it printed."""
    assert shutil.which(SHELL_ARGV[shell][0]), f"{shell} is needed for this test (tests/run.sh installs it)"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "dumb", "PS1": "$ "}
    done = subprocess.run(
        SHELL_ARGV[shell], input=script.encode(), capture_output=True, env=env, timeout=30, cwd=tmp_path
    )
    (tmp_path / "out").write_bytes(done.stdout + b"\n--stderr--\n" + done.stderr)
    found: list[Marker] = []
    for stream in (done.stdout, done.stderr):
        markers, consumed = find_markers(stream, 0, NONCE)
        assert consumed == len(stream)
        found += markers
    return found


def output_of(tmp_path: Path) -> str:
    return (tmp_path / "out").read_bytes().decode(errors="replace")


@pytest.mark.parametrize(
    "bad", ["", "abc", "0123456789ABCDEF", "0123456789abcdeg", "0123abcd'; rm -rf ~", "a" * 33]
)
def test_nonce_must_be_lowercase_hex(bad: str) -> None:
    with pytest.raises(ValueError, match="nonce"):
        setup_lines(bad)


def test_lines_are_short_plain_and_out_of_history() -> None:
    lines = setup_lines(NONCE)
    assert lines
    for line in lines:
        # busybox ash cuts interactive input lines at 1024 bytes.
        assert len(line.encode()) < 1000, line
        # A leading space keeps the line out of history (HISTCONTROL=ignorespace, hist_ignore_space).
        assert line.startswith(" ") and not line.startswith("  ")
        # Raw ESC/BEL would make the echoed line itself look like a marker.
        assert line.isascii() and line.isprintable(), line
        assert "\x1b" not in line and "\x07" not in line and "\n" not in line
    joined = "\n".join(lines)
    assert NONCE in joined
    assert find_markers(joined.encode(), 0, NONCE) == ([], len(joined))


@pytest.mark.parametrize("shell", sorted(PARSE_ARGV))
def test_lines_parse_in_every_shell(shell: str) -> None:
    assert shutil.which(PARSE_ARGV[shell][0])
    for line in setup_lines(NONCE):
        done = subprocess.run([*PARSE_ARGV[shell], line], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0 and not done.stderr, (shell, line, done.stderr)


@pytest.mark.parametrize("shell", sorted(SHELL_ARGV))
def test_integration_runs_and_reports_exit_codes(shell: str, tmp_path: Path) -> None:
    script = "\n".join(setup_lines(NONCE)) + "\nfalse\n(exit 7)\necho hello\nexit\n"
    markers = run_shell(shell, script, tmp_path)
    xs = [m for m in markers if m.kind == "X"]
    assert [m.shell for m in xs] == [shell], output_of(tmp_path)
    ds = [m for m in markers if m.kind == "D"]
    # The last three prompts report the three commands' exit codes, in sequence.
    assert [m.status for m in ds[-3:]] == [1, 7, 0], output_of(tmp_path)
    seqs = [m.seq for m in ds if m.seq is not None]
    assert len(seqs) == len(ds)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert "hello" in output_of(tmp_path)
    if shell in ("bash", "zsh"):
        # A start marker precedes each command's output.
        assert sum(1 for m in markers if m.kind == "C") >= 3


@pytest.mark.parametrize("shell", sorted(SHELL_ARGV))
def test_pagers_are_neutralised(shell: str, tmp_path: Path) -> None:
    probe = 'echo "pagers:$PAGER|$GIT_PAGER|$MANPAGER|$SYSTEMD_PAGER|"'
    script = "\n".join(setup_lines(NONCE)) + f"\n{probe}\nexit\n"
    run_shell(shell, script, tmp_path)
    assert "pagers:cat|cat|cat||" in output_of(tmp_path)


@pytest.mark.parametrize("shell", sorted(SHELL_ARGV))
def test_continuation_prompt_is_marked(shell: str, tmp_path: Path) -> None:
    script = "\n".join(setup_lines(NONCE)) + "\necho 'open\nclosed'\nexit\n"
    markers = run_shell(shell, script, tmp_path)
    assert any(m.kind == "P" for m in markers), output_of(tmp_path)


def test_bash_chains_the_users_prompt_command(tmp_path: Path) -> None:
    script = "PROMPT_COMMAND='echo \"user:$?\"'\n" + "\n".join(setup_lines(NONCE)) + "\nfalse\nexit\n"
    markers = run_shell("bash", script, tmp_path)
    # The user's hook still runs, and still sees the command's status.
    assert "user:1" in output_of(tmp_path)
    assert [m.status for m in markers if m.kind == "D"][-1] == 1


def test_zsh_chains_the_users_precmd(tmp_path: Path) -> None:
    script = (
        '__user_hook() { echo "zuser:$?"; }\nprecmd_functions=(__user_hook)\n'
        + "\n".join(setup_lines(NONCE))
        + "\nfalse\nexit\n"
    )
    markers = run_shell("zsh", script, tmp_path)
    assert "zuser:1" in output_of(tmp_path)
    assert [m.status for m in markers if m.kind == "D"][-1] == 1


@pytest.mark.parametrize("shell", ["dash", "ash"])
def test_posix_shells_keep_the_users_prompt(shell: str, tmp_path: Path) -> None:
    script = "PS1='mine> '\n" + "\n".join(setup_lines(NONCE)) + "\nfalse\nexit\n"
    markers = run_shell(shell, script, tmp_path)
    out = output_of(tmp_path)
    last_d = [m for m in markers if m.kind == "D"][-1]
    assert last_d.status == 1
    # The user's prompt follows the D marker and the working directory's W marker.
    assert f"sk={NONCE}:{last_d.seq}\x07\x1b]133;W;sk={NONCE};{tmp_path}\x07mine> " in out


def between_c_and_d(out: bytes, nth: int) -> bytes:
    """The bytes the nth command (counted from the end) printed: after its C, before the next D."""
    pieces = out.split(f"\x1b]133;C;sk={NONCE}\x07".encode())
    return pieces[-nth].split(b"\x1b]133;D;", 1)[0]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_setup_stays_out_of_history_whatever_the_settings(shell: str, tmp_path: Path) -> None:
    # No ignorespace, no hist_ignore_space: every line would be recorded.
    user = (
        "HISTCONTROL=; HISTIGNORE=; set -o history\n"
        if shell == "bash"
        else "HISTSIZE=100; unsetopt hist_ignore_space\n"
    )
    listing = "history" if shell == "bash" else "fc -ln 1"
    script = user + "\n".join(setup_lines(NONCE)) + f"\necho after-setup\n{listing} > $HOME/hist\nexit\n"
    run_shell(shell, script, tmp_path)
    history = (tmp_path / "hist").read_text(errors="replace")
    assert "echo after-setup" in history  # history still works for the user's own commands
    assert NONCE not in history


@pytest.mark.parametrize("shell", sorted(SHELL_ARGV))
def test_typing_the_setup_twice_does_not_stack_hooks(shell: str, tmp_path: Path) -> None:
    lines = "\n".join(setup_lines(NONCE))
    markers = run_shell(shell, f"{lines}\n{lines}\necho x\n(exit 4)\nexit\n", tmp_path)
    ds = [m for m in markers if m.kind == "D"]
    assert [m.status for m in ds[-2:]] == [0, 4], output_of(tmp_path)
    # One D per prompt: the last prompts' sequence numbers follow each other.
    assert ds[-1].seq == ds[-2].seq + 1  # type: ignore[operator]


@pytest.mark.parametrize("shell", sorted(SHELL_ARGV))
def test_history_expansion_is_off(shell: str, tmp_path: Path) -> None:
    run_shell(shell, "\n".join(setup_lines(NONCE)) + '\necho "x!zzqq" !!\nexit\n', tmp_path)
    assert "x!zzqq !!" in output_of(tmp_path)


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_debug_trap_never_fires_into_the_output(shell: str, tmp_path: Path) -> None:
    script = "\n".join(setup_lines(NONCE)) + "\ntrap 'echo hi' DEBUG\necho ok\n(exit 3)\necho $?\nexit\n"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "dumb", "PS1": "$ "}
    out = subprocess.run(
        SHELL_ARGV[shell], input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env, timeout=30, cwd=tmp_path,
    ).stdout  # fmt: skip
    # The trap fires for the user's own command (as in `bash -c`), never for sshkeep's hooks,
    # and `$?` inside and after it is the user's.
    assert between_c_and_d(out, 2) == b"hi\n3\n", out
    assert between_c_and_d(out, 4) == b"hi\nok\n", out
    # Taken off again, it fires no more.
    script = script.replace("echo $?", "trap - DEBUG\necho done")
    out = subprocess.run(
        SHELL_ARGV[shell], input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env, timeout=30, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert between_c_and_d(out, 2) == b"done\n", out


@pytest.mark.parametrize("shell", sorted(SHELL_ARGV))
def test_a_given_count_wins_over_the_shells_own(shell: str, tmp_path: Path) -> None:
    # A shell that replaced an integrated one (or a parent shell set up again) counts on from the
    # highest prompt number seen, so its prompts are never taken for replays.
    first, again = "\n".join(setup_lines(NONCE)), "\n".join(setup_lines(NONCE, seq=41))
    markers = run_shell(shell, f"{first}\necho x\n{again}\necho y\nexit\n", tmp_path)
    seqs = [m.seq or 0 for m in markers if m.kind == "D"]
    # The count jumps past 41 at the second setup and rises on, never back.
    assert max(seqs) > 42 and seqs == sorted(set(seqs)), (seqs, output_of(tmp_path))


@pytest.mark.parametrize("shell", sorted(SHELL_ARGV))
def test_every_prompt_reports_the_working_directory(shell: str, tmp_path: Path) -> None:
    (tmp_path / "a;b c").mkdir()
    script = "\n".join(setup_lines(NONCE)) + "\ncd 'a;b c'\ncd /\nexit\n"
    markers = run_shell(shell, script, tmp_path)
    dirs = [m.text for m in markers if m.kind == "W"]
    assert dirs[-3:] == [str(tmp_path), f"{tmp_path}/a;b c", "/"], output_of(tmp_path)
    # Each W comes right after a prompt's D marker.
    for i, m in enumerate(markers):
        if m.kind == "W":
            assert markers[i - 1].kind == "D" and markers[i - 1].end == m.start


@pytest.mark.parametrize("shell", sorted(SHELL_ARGV))
def test_a_reconnect_setup_returns_to_the_old_directory(shell: str, tmp_path: Path) -> None:
    old = tmp_path / "it's here"
    old.mkdir()

    def first_dir_after_setup(markers: list[Marker]) -> str | None:
        x = next(m.end for m in markers if m.kind == "X")
        return next(m.text for m in markers if m.kind == "W" and m.start > x)

    markers = run_shell(shell, "\n".join(setup_lines(NONCE, str(old))) + "\nexit\n", tmp_path)
    assert first_dir_after_setup(markers) == str(old), output_of(tmp_path)
    # A directory that is gone: the shell stays where it logged in, silently.
    markers = run_shell(shell, "\n".join(setup_lines(NONCE, "/nonexistent/x")) + "\nexit\n", tmp_path)
    assert first_dir_after_setup(markers) == str(tmp_path)
    out = output_of(tmp_path)
    assert "No such file" not in out and "can't cd" not in out and "no such file" not in out, out


@pytest.mark.parametrize("bad", ["relative/dir", "/tmp/new\nline", "/" + "x" * 600])
def test_a_directory_that_cannot_be_typed_back_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="cwd"):
        setup_lines(NONCE, bad)


def pty_shell(tmp_path: Path, shell: str = "bash") -> tuple[subprocess.Popen[bytes], int]:
    """An interactive shell (bash by default, readline on) on a pty of its own, no rc files."""
    master, slave = os.openpty()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "xterm", "PS1": "$ "}
    proc = subprocess.Popen(
        SHELL_ARGV[shell], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    return proc, master


class PtyReader:
    """What a pty prints, in pieces: `until(needle)` returns everything up to and including it."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buf = fd, b""

    def until(self, needle: bytes, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.buf and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                self.buf += os.read(self.fd, 65536)
        assert needle in self.buf, self.buf
        end = self.buf.index(needle) + len(needle)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out


def test_emptying_an_empty_line_rings_no_bell_in_bash(tmp_path: Path) -> None:
    # The keys typed before each command (Ctrl-E Ctrl-U, see clear_line_bytes) ring readline's
    # bell on an empty line: one BEL more through ssh, tmux and the log per command.
    proc, fd = pty_shell(tmp_path)
    tty = PtyReader(fd)
    try:
        tty.until(b"$ ")
        os.write(fd, b"\x05\x15echo one\r")
        assert b"\x07" in tty.until(b"one\r\n")
        tty.until(b"$ ")
        os.write(fd, ("\n".join(setup_lines(NONCE)) + "\n").encode())
        tty.until(b"\x1b]133;X;sk=" + NONCE.encode())
        tty.until(b"$ ")
        os.write(fd, b"\x05\x15echo two\r")
        out = tty.until(b"two\r\n") + tty.until(b"$ ")
        typed = out.split(b"\x1b]133;C;")[0]
        assert b"echo two" in typed and b"\x07" not in typed, out
        markers, _ = find_markers(out, 0, NONCE)
        assert [m.kind for m in markers if m.kind in "CD"] == ["C", "D"], out
    finally:
        proc.kill()
        proc.wait()
        os.close(fd)


@pytest.mark.parametrize("shell", ["bash", "dash", "ash"])
def test_on_a_tty_the_first_line_reads_the_others_and_nothing_after_them(shell: str, tmp_path: Path) -> None:
    # Typed as the daemon types them, in one write with a command after them: the shell's `read`
    # takes the lines after the first (no line editor echoes or records them) and stops at the
    # last, so the command after them still reaches the prompt.
    proc, fd = pty_shell(tmp_path, shell)
    tty = PtyReader(fd)
    try:
        tty.until(b"$ ")
        if shell == "bash":
            os.write(fd, b"HISTCONTROL= HISTIGNORE=; set -o history\r")
            tty.until(b"$ ")
        keys = "".join(line + end for line, end in line_ends(setup_lines(NONCE)))
        os.write(fd, (keys + " echo after-setup\r").encode())
        out = tty.until(b"after-setup\r\n") + tty.until(b"after-setup\r\n") + tty.until(b"$ ")
        assert f"133;X;sk={NONCE};sh={shell}".encode() in out, out
        # Run once, at the first prompt after the X marker (echoed once or, when the keys reach
        # the tty before the line editor has it, by the tty as well).
        ran = [line for line in out.split(b"\r\n") if line.endswith(b"after-setup") and b"echo" not in line]
        assert len(ran) == 1, out
        kinds = [m.kind for m in find_markers(out, 0, NONCE)[0]]
        assert [k for k in kinds[kinds.index("X") :] if k != "C"] == ["X", "D", "W", "D", "W"], out
        if shell == "bash":
            # readline starts each line it reads with bracketed paste on: it read none of them.
            assert b"\x1b[?2004h" not in out.split(b"\x1b]133;X;")[0], out
            os.write(fd, b"history\r")
            history = tty.until(b"\x1b]133;D;")
            assert b"echo after-setup" in history and f"__sk_k={NONCE}".encode() not in history, history
    finally:
        proc.kill()
        proc.wait()
        os.close(fd)
