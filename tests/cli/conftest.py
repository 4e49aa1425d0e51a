from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from postroom.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``postroom ARGS`` in this process; returns exit code, stdout and stderr."""

    def invoke(*argv: str) -> Result:
        capsys.readouterr()  # drop anything printed before
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse refuses usage errors this way
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


DOMAIN_ARGS = (
    "domain",
    "add",
    "example.test",
    "--imap-host",
    "imap.example.test",
    "--imap-port",
    "993",
    "--imap-security",
    "ssl",
    "--smtp-host",
    "smtp.example.test",
    "--smtp-port",
    "465",
    "--smtp-security",
    "ssl",
)
