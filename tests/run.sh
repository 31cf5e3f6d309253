#!/usr/bin/env bash
# The project's test command: `bash tests/run.sh [pytest args...]`.
#
# On Debian/Ubuntu, as root, it first installs the system tools the integration tests need
# (tmux, OpenSSH server and client, the shells under test) when absent; then it sets up a venv in
# .venv, installs the project with its test extras, and runs ruff, mypy and pytest. Any failure,
# and a pytest run that collects no tests, exits non-zero.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n==> %s\n' "$*"; }
die() {
    printf '\nrun.sh: %s\n' "$*" >&2
    exit 1
}

# --- system tools ----------------------------------------------------------------------------------

# command the tests need -> Debian package that provides it
declare -A PACKAGE_OF=(
    [tmux]=tmux
    [sshd]=openssh-server
    [ssh]=openssh-client
    [ssh-keygen]=openssh-client
    [zsh]=zsh
    [dash]=dash
    [busybox]=busybox
    [ps]=procps
    [top]=procps
    [vim]=vim # full-screen programs' tests (with less and top)
    [less]=less
    [useradd]=passwd
    [chpasswd]=passwd
    [python3]=python3
    [curl]=curl
    [sudo]=sudo # answer_secret's tests type a password into a real sudo prompt
    [systemd-analyze]=systemd # verifies the unit files; installs without booting systemd
    [ip]=iproute2 # test_reconnect.py: an sshd in a network namespace behind a veth
    [nft]=nftables # test_reconnect.py black-holes that veth
)

have() { PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1; }

APT_UPDATED=0
apt_install() {
    if [[ $EUID -ne 0 ]]; then
        die "missing packages: $* -- run as root (or: sudo apt-get install $*), then retry"
    fi
    have apt-get || die "missing packages: $* -- and no apt-get here: install them yourself"
    if [[ $APT_UPDATED -eq 0 ]]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

say "checking system tools: ${!PACKAGE_OF[*]}"
missing=()
for cmd in "${!PACKAGE_OF[@]}"; do
    if ! have "$cmd"; then
        pkg=${PACKAGE_OF[$cmd]}
        [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
    fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}"
else
    echo "all present"
fi

# --- venv ------------------------------------------------------------------------------------------

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "sshkeep needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1) (set PYTHON=/path/to/python3.11+)"

venv_ok() { [[ -x .venv/bin/python ]] && .venv/bin/python -m pip --version >/dev/null 2>&1; }

if ! venv_ok; then
    say "creating .venv with $PYTHON"
    rm -rf .venv
    if ! "$PYTHON" -m venv .venv; then
        rm -rf .venv # Debian/Ubuntu leave a venv without pip when python3-venv is absent
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
    venv_ok || die ".venv has no working pip"
fi
BIN=$PWD/.venv/bin

# The wheel installs common/, daemon/ and shim/ as one package, `sshkeep` (a prefix an editable
# install cannot add), so the tests run against the installed package, as a user installs it.
say "pip install '.[test]' (the package as a user installs it)"
"$BIN/python" -m pip install -q --force-reinstall --no-deps .
"$BIN/python" -m pip install -q '.[test]'

# mypy reads the sources through a staged `sshkeep` tree of symlinks (build/typecheck/sshkeep).
stage=build/typecheck/sshkeep
rm -rf build/typecheck
mkdir -p "$stage"
for part in common daemon shim; do ln -s "$PWD/$part" "$stage/$part"; done
for f in __init__.py __main__.py py.typed; do ln -s "$PWD/shim/_package/$f" "$stage/$f"; done

# --- checks ----------------------------------------------------------------------------------------

say "ruff check ."
"$BIN/ruff" check .

say "ruff format --check ."
"$BIN/ruff" format --check .

say "mypy"
"$BIN/mypy"

say "mypy --strict bench (the benchmark imports the installed package)"
"$BIN/mypy" --strict bench

say "pytest -q $*"
status=0
"$BIN/python" -m pytest -q "$@" || status=$?
if [[ $status -eq 5 ]]; then
    die "pytest collected no tests (exit 5): treated as a failure"
elif [[ $status -ne 0 ]]; then
    die "pytest failed (exit $status)"
fi
say "all checks passed"
