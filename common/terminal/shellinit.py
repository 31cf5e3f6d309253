"""The lines typed after login that integrate the remote shell.

They are POSIX sh at the top level and hand shell-specific code to `eval`, so bash, zsh, dash and
busybox ash all parse them. Markers are written with printf escapes (`\\033`), so the echoed line
never contains a raw marker; the ESC byte exists only when a prompt is printed. User prompt hooks
are chained, never replaced, and typing the setup again (a shell that replaced itself, a nested
shell) re-points the hooks at the new nonce instead of stacking a second copy.

History: the first line (it holds no nonce) switches bash's history list off and zsh's
`hist_ignore_space` on before any line holding the nonce is read; the last line switches bash's
history back on if it was on. dash and busybox ash cannot switch theirs off: there the first line
reads the other lines itself (`read` from the tty, so their line editor never sees them); bash's
does the same, as that is faster than readline. So the nonce never reaches `~/.bash_history`,
`~/.zsh_history`, `~/.ash_history` or an in-memory history list, whatever `HISTCONTROL`,
`HISTIGNORE` or the user's zsh options say. History expansion (`!`) is switched off in bash and
zsh: command text is data.

A user's `trap … DEBUG` (bash, zsh) would fire for sshkeep's own prompt hooks and print into the
output of every later command; the prompt hook sets such a trap again, wrapped so that it skips
sshkeep's hooks and the commands inside sshkeep's functions (and keeps `$?`). It still fires
for the user's own commands, as it would without sshkeep. bash's hook finds the trap without
forking the shell (see `bash_trap`); zsh's forks once per prompt to list the traps.
"""

from __future__ import annotations

import re

_NONCE = re.compile(r"^[0-9a-f]{8,32}$")

PAGER_ENV = "PAGER=cat GIT_PAGER=cat SYSTEMD_PAGER= MANPAGER=cat GIT_EDITOR=: LESS=-FR SYSTEMD_COLORS=0"

SHELLS_WITH_HOOKS = frozenset({"bash", "zsh"})
# dash and ash have no pre-exec hook: the typed command is prefixed with this function's call.
START_FUNCTION = "__sk_c"

# Holds no nonce: this line may land in history before history is off. dash and busybox ash
# have no way to switch their history list off, so there this line reads the lines after it
# with `read` (from the tty, never through the line editor and its history) and runs each, up to
# the last. bash reads them the same way, for speed: readline takes ~3 ms a line to echo and
# redraw it (and ~4 KB of echo for the log), `read` a fraction of that. bash's `read` takes all
# the tty holds in one system call unless it counts characters (`-n`), which makes it read one
# byte at a time: nothing typed after the last line is swallowed. The lines after the first end
# in a line feed (`commandline.line_ends`): a newline to `read` whatever the tty's mode (a carriage return
# typed while readline had the tty stays one), accept-line to readline and zle. bash and zsh skip
# the `readlink` fork. Input that is not a tty (a pipe) may be read ahead by the shell: there the
# lines are typed as is.
_HISTORY_OFF = (
    ' [ -n "$BASH_VERSION" ] && { [[ -o history ]] && __sk_ho=1; set +o history; }; '
    '[ -n "$ZSH_VERSION" ] && setopt hist_ignore_space; '
    '[ -t 0 ] && [ -z "$ZSH_VERSION" ] && '
    'case "${BASH_VERSION:+bash}${BASH_VERSION:-$(readlink /proc/$$/exe 2>/dev/null)}" in '
    "bash*|*/busybox|*/dash) "
    'while IFS= read -r ${BASH_VERSION:+-n65536} __sk_l; do eval "$__sk_l"; '
    'case "$__sk_l" in " export "*) break;; esac; done; '
    "unset __sk_l;; esac; :"
)


MAX_RESTORED_DIR = 512


def restorable(directory: str | None) -> bool:
    """Whether `directory` (a W marker's) can be typed back as a `cd`: absolute, printable, short
    enough for busybox's 1024-byte lines."""
    return (
        directory is not None
        and directory.startswith("/")
        and len(directory.encode()) <= MAX_RESTORED_DIR
        and directory.isprintable()
        and "\ufffd" not in directory
    )


def setup_lines(nonce: str, cwd: str | None = None, seq: int = 0) -> list[str]:
    """The setup commands for one session; each starts with a space.

    `seq` is where a new shell's prompt numbers start: a shell that replaced an integrated one
    (`exec bash`) counts on from the old one's last prompt, so its prompts are never taken for
    replays of old ones.

    Short lines rather than one long one: busybox ash cuts input lines at 1024 bytes. The last
    line prints the X marker, so the first D marker after it means the shell is integrated and idle.
    With `cwd` (a reconnect that knows where the old shell was), a line before it changes there,
    silently: the W marker of the first prompt tells whether it worked.
    """
    if not _NONCE.match(nonce):
        raise ValueError("nonce must be lowercase hex")
    if cwd is not None and not restorable(cwd):
        raise ValueError("cwd must be an absolute, printable path of at most 512 bytes")
    # Typed again into a shell that has a count of its own (a nested shell's parent), the count
    # given wins: it is above every prompt number seen so far.
    count = f"__sk_n={int(seq)}" if seq > 0 else "__sk_n=${__sk_n:-0}"
    d = "\\033]133;D;%s;sk=%s:%s\\007"
    w = "\\033]133;W;sk=%s;%s\\007"
    bash = (
        f"__sk_k={nonce}; {count}; set +H; "
        # Ctrl-U on an empty line (the keys that empty it before each command) rings readline's
        # bell: a BEL of its own, sent and carried through tmux, its log and every attached
        # terminal ahead of each command's echo. Only the line editor's bell is silenced.
        "bind 'set bell-style none' 2>/dev/null; "
        f"__sk_pc() {{ local r=$?; __sk_n=$((__sk_n+1)); "
        f'printf "{d}{w}" "$r" "$__sk_k" "$__sk_n" "$__sk_k" "$PWD"; return $r; }}; '
        "__sk_rs() { return $1; }; "
        # printf -v: no subshell (a fork each) while the session opens.
        'printf -v __sk_cm "\\033]133;C;sk=%s\\007" "$__sk_k"; '
        'printf -v __sk_pm "\\033]133;P;sk=%s\\007" "$__sk_k"; '
        'case ";$PROMPT_COMMAND;" in *";__sk_pc;"*) ;; '
        '*) PROMPT_COMMAND="__sk_pc;__sk_dg${PROMPT_COMMAND:+;$PROMPT_COMMAND}";; esac; '
        'case "$PS0" in *__sk_cm*) ;; *) PS0="\\${__sk_cm}$PS0";; esac; '
        'case "$PS2" in *__sk_pm*) ;; *) PS2="\\[\\${__sk_pm}\\]$PS2";; esac'
    )
    # A user's DEBUG trap fires before `__sk_pc` and would print into every output: once seen,
    # it is set again wrapped so that it skips sshkeep's commands (keeping `$?`). The check runs
    # after the D marker, in a function traced (`-t`) so that it sees the trap. `$(trap -p DEBUG)`
    # would fork the shell at every prompt (a fork costs more than the rest of a prompt cycle,
    # and delays the next command typed): where a here-string is a pipe (bash 5.1+, tested once
    # here), `trap -p` is read back through one the function opens and closes itself, reopened
    # for writing through /dev/fd, so no child process inherits it. Elsewhere it forks.
    bash_trap = (
        "__sk_fp=; if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 501)) && "
        '{ exec {__sk_fa}<<<""; } 2>/dev/null; then { exec {__sk_fb}<>"/dev/fd/$__sk_fa"; } 2>/dev/null '
        "&& { [[ -p /dev/fd/$__sk_fb ]] && __sk_fp=1; exec {__sk_fb}<&-; }; exec {__sk_fa}<&-; fi; "
        "unset __sk_fa __sk_fb; "
        "__sk_dg() { local r=$? t= __sk_fa __sk_fb; "
        'if [[ -n $__sk_fp ]] && { exec {__sk_fa}<<<""; } 2>/dev/null; then '
        'if { exec {__sk_fb}<>"/dev/fd/$__sk_fa"; } 2>/dev/null; then '
        # Each with its own redirection: a user's trap firing before them prints where it would.
        'trap -p DEBUG >&$__sk_fb; printf "\\0" >&$__sk_fb; IFS= read -r -d "" -t 1 -u $__sk_fa t || :; '
        "t=${t#?}; exec {__sk_fb}<&-; else t=$(trap -p DEBUG); fi; exec {__sk_fa}<&-; "
        "else t=$(trap -p DEBUG); fi; "
        "if [[ -n $t && $t != *__sk_dt* ]]; then "
        'eval "set -- $t"; __sk_dt=$3; '
        "trap -- '__sk_dq=$?; case ${FUNCNAME[0]-}:$BASH_COMMAND in __sk_*|*:__sk_*) ;; "
        '*) __sk_rs $__sk_dq; eval -- "$__sk_dt";; esac\' DEBUG; fi; return $r; }; declare -ft __sk_dg'
    )
    zsh = (
        f"__sk_k={nonce}; {count}; setopt no_bang_hist; "
        # A user's DEBUG trap fires for every command of sshkeep's hooks too (they are functions):
        # the first sublist of the prompt hook sets it again wrapped, so that it skips commands run
        # while one of sshkeep's functions is on the stack. It is one sublist, as zsh runs a DEBUG
        # trap once per sublist: the unwrapped trap fires once, into the output of the command
        # that set it.
        '__sk_precmd() { local r=$? t=${(M)${(f)"$(trap)"}:#trap -- * DEBUG} '
        "&& [[ -n $t && $t != *__sk_dt* ]] && __sk_dt=${(Q)${${t#trap -- }% DEBUG}} "
        "&& trap -- '__sk_dq=$?; (( ${funcstack[(I)__sk_*]} )) || "
        '{ __sk_rs $__sk_dq; eval -- "$__sk_dt"; }\' DEBUG; '
        f'__sk_n=$((__sk_n+1)); printf "{d}{w}" "$r" "$__sk_k" "$__sk_n" "$__sk_k" "$PWD"; }}; '
        "__sk_rs() { return $1; }; "
        '__sk_preexec() { printf "\\033]133;C;sk=%s\\007" "$__sk_k"; }; '
        "precmd_functions=(__sk_precmd ${precmd_functions:#__sk_precmd}); "
        "preexec_functions=(__sk_preexec ${preexec_functions:#__sk_preexec}); "
        "unsetopt prompt_sp; "
        # zle mangles typed non-ASCII under a C/POSIX locale; C.UTF-8 fixes it where it exists.
        "[[ $(locale charmap 2>/dev/null) != UTF-8 ]] && "
        'locale -a 2>/dev/null | grep -qixE "c\\\\.utf-?8" && export LC_CTYPE=C.UTF-8; '
        '__sk_p2=${__sk_p2-$PS2}; PS2="%{$(printf "\\033]133;P;sk=%s\\007" "$__sk_k")%}$__sk_p2"'
    )
    # dash and ash expand `$((...))`, `$?` and variables in PS1 at print time in the shell itself;
    # the ESC and BEL bytes come from printf here, so only the variables (never the echo) hold them.
    posix = (
        f"export {PAGER_ENV}; __sk_sh=$BASH_VERSION$ZSH_VERSION; "
        f'if [ -z "$__sk_sh" ]; then __sk_k={nonce}; {count}; '
        '__sk_c() { __sk_s=$?; printf "\\033]133;C;sk=%s\\007" "$__sk_k"; return "${1:-$__sk_s}"; }; '
        " __sk_e=$(printf '\\033'); __sk_b=$(printf '\\007'); "
        'case "$PS1" in *__sk_k*) ;; '
        '*) PS1="${__sk_e}]133;D;\\$?;sk=\\${__sk_k}:\\$((__sk_n+=1))${__sk_b}'
        '${__sk_e}]133;W;sk=\\${__sk_k};\\${PWD}${__sk_b}$PS1";; esac; '
        'case "$PS2" in *__sk_k*) ;; *) PS2="${__sk_e}]133;P;sk=\\${__sk_k}${__sk_b}$PS2";; esac; '
        'case "$(readlink /proc/$$/exe 2>/dev/null)" in *busybox*) __sk_sh=ash;; *dash*) __sk_sh=dash;; '
        "*) __sk_sh=sh;; esac; "
        'elif [ -n "$BASH_VERSION" ]; then __sk_sh=bash; else __sk_sh=zsh; fi; '
        f'printf "\\033]133;X;sk=%s;sh=%s\\007" {nonce} "$__sk_sh"; '
        '[ -n "$__sk_ho" ] && set -o history; :'
    )
    cd = [f" cd -- '{_single(cwd)}' 2>/dev/null; :"] if cwd is not None else []
    return [
        _HISTORY_OFF,
        f" [ -n \"$BASH_VERSION\" ] && eval '{_single(bash_trap)}'",
        f" [ -n \"$BASH_VERSION\" ] && eval '{_single(bash)}'",
        f" [ -n \"$ZSH_VERSION\" ] && eval '{_single(zsh)}'",
        *cd,
        f" {posix}",
    ]


def _single(code: str) -> str:
    """`code` for use inside a single-quoted sh word."""
    return code.replace("'", "'\\''")
