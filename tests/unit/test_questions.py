from __future__ import annotations

import pytest

from sshkeep.common.terminal.questions import KINDS, Question, detect_question

HOST_KEY_TAIL = (
    "The authenticity of host 'box (10.0.0.5)' can't be established.\n"
    "ED25519 key fingerprint is SHA256:AbCdEf0123456789abcdef0123456789ABCDEFabcd.\n"
    "This key is not known by any other names.\n"
    "Are you sure you want to continue connecting (yes/no/[fingerprint])?"
)


@pytest.mark.parametrize(
    ("tail", "kind"),
    [
        ("Password:", "password"),
        ("Password: ", "password"),
        ("output\nSorry, try again.\n[sudo] password for alice:", "password"),
        ("alice@box's password:", "password"),
        ("(alice@box) Password:", "password"),
        ("Password for 'https://alice@github.com':", "password"),
        ("Enter password:", "password"),
        ("Retype new password:", "password"),
        ("Enter PIN for 'PIV Card Holder pin':", "password"),
        ("Enter passphrase for key '/home/a/.ssh/id_ed25519':", "passphrase"),
        ("Enter passphrase (empty for no passphrase):", "passphrase"),
        ("Enter PEM pass phrase:", "passphrase"),
        ("Do you want to continue? [Y/n]", "confirm"),
        ("Install these packages [y/N] ", "confirm"),
        ("Overwrite (y/n)?", "confirm"),
        ("Delete all? (yes/no)", "confirm"),
        ("Apply? [yes/no]:", "confirm"),
        ("Is this ok [y/N]:", "confirm"),
        ("Proceed ([y]/n)?", "confirm"),
        ("Continue?", "confirm"),
        ("Proceed? ", "confirm"),
        ("Overwrite existing file 'a.txt'?", "confirm"),
        ("rm: remove regular file 'x'?", "confirm"),
        ("Press any key to continue", "confirm"),
        ("Verification code:", "otp"),
        ("(alice@box) Verification code:", "otp"),
        ("One-time password:", "otp"),
        ("OTP:", "otp"),
        ("Enter the code from your authenticator app", "otp"),
        ("Passcode or option (1-3):", "otp"),
        ("Passcode:", "otp"),
        ("PIN:", "password"),
        ("Secret:", "secret"),
        ("API token:", "secret"),
        ("Enter your API key:", "secret"),
        ("Vault token (hidden):", "secret"),
        ("Client secret for app 'x':", "secret"),
        ("Duo two-factor login for alice\n\n 1. Duo Push to XXX-XXX-1234\n\nChoose an option:", "otp"),
        (">", "continuation"),
        ("$ echo 'abc\n> ", "continuation"),
        ("dquote>", "continuation"),
        ("for quote>", "continuation"),
        ("Enter file in which to save the key (/root/.ssh/id_ed25519):", "prompt"),
        ("Username for 'https://github.com':", "prompt"),
        ("What is your name? ", "prompt"),
        ("In [1]:", "prompt"),
        (">>>", "prompt"),
        ("mysql>", "prompt"),
        ("(gdb)", "prompt"),
        ("root@box:~#", "prompt"),
        ("[alice@box ~]$", "prompt"),
        (":", "fullscreen"),
        ("(END)", "fullscreen"),
        ("--More--(42%)", "fullscreen"),
    ],
)
def test_detects(tail: str, kind: str) -> None:
    question = detect_question(tail)
    assert question is not None
    assert question.kind == kind
    assert question.kind in KINDS
    assert question.text == tail.split("\n")[-1].strip()


def test_host_key_includes_fingerprint() -> None:
    assert detect_question(HOST_KEY_TAIL) == Question(
        "host_key",
        "ED25519 key fingerprint is SHA256:AbCdEf0123456789abcdef0123456789ABCDEFabcd.\n"
        "Are you sure you want to continue connecting (yes/no/[fingerprint])?",
    )


def test_host_key_without_fingerprint_and_retry_prompt() -> None:
    question = "Are you sure you want to continue connecting (yes/no)?"
    assert detect_question(question) == Question("host_key", question)
    retry = detect_question(HOST_KEY_TAIL + " maybe\nPlease type 'yes', 'no' or the fingerprint:")
    assert retry is not None
    assert retry.kind == "host_key"
    assert retry.text.startswith("ED25519 key fingerprint is SHA256:")


@pytest.mark.parametrize(
    "tail",
    [
        "",
        "\n\n",
        "1\n2\n3\n4",
        "12345",
        "Downloading 50%",
        "[=====>      ] 42%",
        "Compiling foo v0.1.0",
        "total 12\ndrwxr-xr-x 2 a a 4096 Jan 1 00:00 dir",
        "Done.",
        "x" * 250 + ":",
        # answered: sudo printed a newline after the password and now runs a silent command
        "[sudo] password for alice:\n",
        "Password:\n\n",
        "Continue? [y/N] y\n",
    ],
)
def test_ordinary_output_is_not_a_question(tail: str) -> None:
    assert detect_question(tail) is None


def test_question_is_frozen() -> None:
    question = Question("password", "Password:")
    with pytest.raises(AttributeError):
        question.kind = "otp"  # type: ignore[misc]
