"""The one line typed after login that integrates the remote shell.

It is POSIX sh at the top level and hands shell-specific code to `eval`, so bash, zsh, dash and
busybox ash all parse it. Markers are written with printf escapes (`\\033`), so the echoed line
never contains a raw marker; the ESC byte exists only when a prompt is printed. User prompt hooks
are chained, never replaced.
"""

from __future__ import annotations

import re

_NONCE = re.compile(r"^[0-9a-f]{8,32}$")

PAGER_ENV = "PAGER=cat GIT_PAGER=cat SYSTEMD_PAGER= MANPAGER=cat GIT_EDITOR=: LESS=-FR SYSTEMD_COLORS=0"

SHELLS_WITH_HOOKS = frozenset({"bash", "zsh"})
# dash and ash have no pre-exec hook: the typed command is prefixed with this function's call.
START_FUNCTION = "__sk_c"


def setup_lines(nonce: str) -> list[str]:
    """The setup commands for one session; each starts with a space (kept out of history).

    Three short lines rather than one long one: busybox ash cuts input lines at 1024 bytes. The last
    line prints the X marker, so the first D marker after it means the shell is integrated and idle.
    """
    if not _NONCE.match(nonce):
        raise ValueError("nonce must be lowercase hex")
    d = f"\\033]133;D;%s;sk={nonce}:%s\\007"
    bash = (
        f'__sk_n=0; __sk_pc() {{ local r=$?; __sk_n=$((__sk_n+1)); printf "{d}" "$r" "$__sk_n"; '
        f"return $r; }}; "
        f'PROMPT_COMMAND="__sk_pc${{PROMPT_COMMAND:+;$PROMPT_COMMAND}}"; '
        f'PS0="\\033]133;C;sk={nonce}\\007$PS0"; '
        f'PS2="\\[\\033]133;P;sk={nonce}\\007\\]$PS2"'
    )
    zsh = (
        f"__sk_n=0; __sk_precmd() {{ local r=$?; __sk_n=$((__sk_n+1)); "
        f'printf "{d}" "$r" "$__sk_n"; }}; '
        f'__sk_preexec() {{ printf "\\033]133;C;sk={nonce}\\007"; }}; '
        f"precmd_functions=(__sk_precmd $precmd_functions); "
        f"preexec_functions=(__sk_preexec $preexec_functions); "
        f"unsetopt prompt_sp; setopt hist_ignore_space; "
        # zle mangles typed non-ASCII under a C/POSIX locale; C.UTF-8 fixes it where it exists.
        "[[ $(locale charmap 2>/dev/null) != UTF-8 ]] && "
        'locale -a 2>/dev/null | grep -qixE "c\\\\.utf-?8" && export LC_CTYPE=C.UTF-8; '
        f'PS2="%{{$(printf "\\033]133;P;sk={nonce}\\007")%}}$PS2"'
    )
    # dash and ash expand `$((...))` and `$?` in PS1 at print time in the shell itself; the ESC and
    # BEL bytes come from printf here, so only the variable (never the echo) contains them.
    posix = (
        f"export {PAGER_ENV}; __sk_sh=$BASH_VERSION$ZSH_VERSION; "
        'if [ -z "$__sk_sh" ]; then __sk_n=0; '
        f'__sk_c() {{ printf "\\033]133;C;sk={nonce}\\007"; }}; '
        " __sk_e=$(printf '\\033'); __sk_b=$(printf '\\007'); "
        f'PS1="${{__sk_e}}]133;D;\\$?;sk={nonce}:\\$((__sk_n+=1))${{__sk_b}}$PS1"; '
        f'PS2="${{__sk_e}}]133;P;sk={nonce}${{__sk_b}}$PS2"; '
        'case "$(readlink /proc/$$/exe 2>/dev/null)" in *busybox*) __sk_sh=ash;; *dash*) __sk_sh=dash;; '
        "*) __sk_sh=sh;; esac; "
        'elif [ -n "$BASH_VERSION" ]; then __sk_sh=bash; else __sk_sh=zsh; fi; '
        f'printf "\\033]133;X;sk={nonce};sh=%s\\007" "$__sk_sh"'
    )
    return [
        f" [ -n \"$BASH_VERSION\" ] && eval '{bash}'",
        f" [ -n \"$ZSH_VERSION\" ] && eval '{zsh}'",
        f" {posix}",
    ]
