from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.core.models import ApiToken
from tests.cli.conftest import DOMAIN_ARGS, Result

pytestmark = pytest.mark.django_db

Run = Callable[..., Result]


@pytest.fixture
def domain(run: Run) -> EmailDomain:
    result = run(*DOMAIN_ARGS)
    assert result.code == 0, result.err
    return EmailDomain.objects.get(name="example.test")


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PR_TEST_PASSWORD", "pw-from-env")
    return "PR_TEST_PASSWORD"


def add_account(run: Run, email: str, *extra: str) -> Result:
    return run("account", "add", "--email", email, *extra)


def user_with(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


# -- domains ------------------------------------------------------------------------


def test_domain_add_and_list(run: Run, domain: EmailDomain) -> None:
    assert domain.incoming_host == "imap.example.test"
    assert domain.smtp_port == 465
    listed = run("domain", "list", "--json")
    assert listed.code == 0
    assert [d["name"] for d in json.loads(listed.out)] == ["example.test"]
    assert "imap://imap.example.test:993" in run("domain", "list").out


def test_domain_add_with_ca_file_and_no_auth(run: Run, tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    result = run(
        "domain", "add", "corp.test", "--pop3-host", "pop.corp.test", "--pop3-port", "995",
        "--pop3-security", "ssl", "--smtp-host", "relay.corp.test", "--smtp-port", "25",
        "--smtp-security", "starttls", "--smtp-no-auth", "--ca-file", str(pem),
    )  # fmt: skip
    assert result.code == 0, result.err
    domain = EmailDomain.objects.get(name="corp.test")
    assert domain.incoming_protocol == "pop3"
    assert domain.smtp_auth is False
    assert domain.ca_cert.startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ("bad", "--imap-host", "h", "--imap-port", "993", "--imap-security", "ssl"),
            "postroom: error: DOMAIN: Enter a domain name such as example.com, without @ or spaces.",
        ),
        (
            ("ok.test", "--imap-host", "h", "--imap-port", "70000", "--imap-security", "ssl"),
            "postroom: error: --imap-port: Ensure this value is less than or equal to 65535.",
        ),
        (("ok.test",), "postroom: error: --imap-host: This field is required."),
        (
            ("ok.test", "--imap-host", "h", "--imap-port", "993", "--smtp-host", "s"),
            "postroom: error: --smtp-port: Give the SMTP port as well as the SMTP server.",
        ),
    ],
    ids=["bad-name", "port-out-of-range", "no-incoming-server", "smtp-without-port"],
)
def test_domain_bad_input(run: Run, argv: tuple[str, ...], line: str) -> None:
    result = run("domain", "add", *argv)
    assert result.code == 2
    assert line in result.err.splitlines()
    assert not EmailDomain.objects.exists()


# -- account add / list / show / remove -----------------------------------------------


def test_account_add_list_show_remove(run: Run, domain: EmailDomain, password_env: str) -> None:
    added = add_account(
        run, "Carol@Example.test", "--name", "Carol", "--password-env", password_env,
        "--folder", "INBOX", "--folder", "Archive", "--skip-check", "--default-incoming",
    )  # fmt: skip
    assert added.code == 0, added.err
    assert "Carol" in added.out
    account = EmailAccount.objects.get(email="carol@example.test")
    assert account.get_password() == "pw-from-env"
    assert account.folders == ["INBOX", "Archive"]
    assert account.default_incoming

    listed = json.loads(run("account", "list", "--json").out)
    assert "carol@example.test" in {a["email"] for a in listed}
    assert "Carol" in run("account", "list").out

    for name in ("Carol", "carol@example.test"):
        shown = run("account", "show", name, "--json")
        assert shown.code == 0
        data = json.loads(shown.out)
        assert data["servers"]["incoming_host"] == "imap.example.test"
        assert data["has_password"] is True
        assert "pw-from-env" not in shown.out
        assert account.password_encrypted not in shown.out
    assert "pw-from-env" not in run("account", "show", "Carol").out

    removed = run("account", "remove", "Carol")
    assert removed.code == 0
    assert not EmailAccount.objects.filter(email="carol@example.test").exists()
    missing = run("account", "show", "Carol")
    assert missing.code == 2
    assert "There is no account named Carol." in missing.err


def test_account_add_with_explicit_servers_and_separate_logins(
    run: Run, password_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PR_SMTP_PW", "smtp-pw")
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    result = add_account(
        run, "ops@self.test", "--imap-host", "mail.self.test", "--imap-port", "143",
        "--imap-security", "starttls", "--smtp-host", "mail.self.test", "--smtp-port", "587",
        "--smtp-security", "starttls", "--login", "SELF\\ops", "--smtp-login", "ops-smtp",
        "--password-env", password_env, "--smtp-password-env", "PR_SMTP_PW",
        "--ca-file", str(pem), "--skip-check",
    )  # fmt: skip
    assert result.code == 0, result.err
    account = EmailAccount.objects.get(email="ops@self.test")
    assert (account.incoming_host, account.incoming_port) == ("mail.self.test", 143)
    assert account.effective_login == "SELF\\ops"
    assert account.effective_smtp_login == "ops-smtp"
    assert account.get_smtp_password() == "smtp-pw"
    assert account.ca_cert.startswith("-----BEGIN CERTIFICATE-----")
    assert account.verify_cert


def test_no_verify_cert_is_the_confirmation(
    run: Run, domain: EmailDomain, password_env: str
) -> None:
    result = add_account(
        run, "x@example.test", "--password-env", password_env, "--no-verify-cert", "--skip-check"
    )
    assert result.code == 0, result.err
    assert EmailAccount.objects.get(email="x@example.test").verify_cert is False


def test_awaiting_password_and_preset(run: Run, password_env: str) -> None:
    awaiting = add_account(run, "new@gmail.com", "--preset", "gmail", "--awaiting-password")
    assert awaiting.code == 0, awaiting.err
    data = json.loads(run("account", "show", "new@gmail.com", "--json").out)
    assert data["awaiting_password"] is True
    assert data["servers"]["incoming_host"] == "imap.gmail.com"
    # Awaiting a password: nothing is tried, and the test says so.
    tested = run("account", "test", "new@gmail.com", "--json")
    assert tested.code == 1
    assert json.loads(tested.out)["incoming"]["code"] == "awaiting_password"


# -- bad input: one "--option: message" line per error, exit 2, nothing saved ----------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ("--email", "not-an-address", "--password-env", "PR_TEST_PASSWORD"),
            "postroom: error: --email: Enter a valid email address.",
        ),
        (
            ("--email", "x@unknown.test", "--password-env", "PR_TEST_PASSWORD"),
            "postroom: error: --imap-host: No servers known for unknown.test: add the domain "
            "under Domains, choose a provider preset, or enter the servers.",
        ),
        (
            (
                "--email",
                "x@nosuch.test",
                "--domain",
                "nosuch.test",
                "--password-env",
                "PR_TEST_PASSWORD",
            ),
            "postroom: error: --domain: There is no domain nosuch.test. Add it first, or give "
            "the servers or a preset instead.",
        ),
        (
            (
                "--email",
                "x@example.test",
                "--imap-port",
                "70000",
                "--password-env",
                "PR_TEST_PASSWORD",
            ),
            "postroom: error: --imap-port: Ensure this value is less than or equal to 65535.",
        ),
        (
            ("--email", "x@example.test", "--smtp-port", "0", "--password-env", "PR_TEST_PASSWORD"),
            "postroom: error: --smtp-port: Ensure this value is greater than or equal to 1.",
        ),
        (
            ("--email", "x@example.test"),
            "postroom: error: --password-env: Enter the password, or mark the account as "
            "awaiting its password.",
        ),
        (
            ("--email", "x@example.test", "--password-env", "PR_NOT_SET_ANYWHERE"),
            "postroom: error: --password-env: The environment variable PR_NOT_SET_ANYWHERE "
            "is not set.",
        ),
        (
            (
                "--email",
                "x@example.test",
                "--password-env",
                "PR_TEST_PASSWORD",
                "--no-incoming",
                "--default-incoming",
            ),
            "postroom: error: --default-incoming: The default incoming account must have "
            "incoming enabled.",
        ),
        (
            (
                "--email",
                "x@example.test",
                "--password-env",
                "PR_TEST_PASSWORD",
                "--ca-file",
                "/nonexistent/ca.pem",
            ),
            "postroom: error: --ca-file: Cannot read /nonexistent/ca.pem: No such file or directory",
        ),
        (
            (
                "--email",
                "x@example.test",
                "--password-env",
                "PR_TEST_PASSWORD",
                "--imap-host",
                "a",
                "--pop3-host",
                "b",
            ),
            "postroom: error: Give either the --imap-* or the --pop3-* options, not both.",
        ),
        (
            ("--email", "x@example.test", "--password-env", "PR_TEST_PASSWORD", "--preset", "nope"),
            "postroom: error: --preset: Select a valid choice. nope is not one of the available "
            "choices.",
        ),
    ],
    ids=[
        "invalid-address",
        "unknown-domain",
        "unknown-domain-option",
        "port-out-of-range",
        "port-zero",
        "missing-password",
        "password-variable-not-set",
        "default-incoming-without-incoming",
        "unreadable-ca-file",
        "imap-and-pop3",
        "unknown-preset",
    ],
)
def test_account_bad_input(
    run: Run, domain: EmailDomain, password_env: str, argv: tuple[str, ...], line: str
) -> None:
    before = EmailAccount.objects.count()
    result = run("account", "add", "--skip-check", *argv)
    assert result.code == 2, result
    assert line in result.err.splitlines(), result.err
    assert result.out == ""
    assert EmailAccount.objects.count() == before


def test_duplicate_address(run: Run, domain: EmailDomain, password_env: str) -> None:
    first = add_account(run, "dup@example.test", "--password-env", password_env, "--skip-check")
    assert first.code == 0
    again = add_account(
        run, "DUP@example.test", "--name", "other", "--password-env", password_env, "--skip-check"
    )
    assert again.code == 2
    assert (
        "postroom: error: --email: Email account with this Email address already exists."
        in again.err.splitlines()
    )
    assert EmailAccount.objects.filter(email="dup@example.test").count() == 1


def test_a_port_that_is_not_a_number_is_a_usage_error(run: Run) -> None:
    result = run("account", "add", "--email", "x@example.test", "--imap-port", "abc")
    assert result.code == 2
    assert "--imap-port" in result.err


# -- server checks -------------------------------------------------------------------


def _closed_port_account(closed_port: int) -> tuple[str, ...]:
    return (
        "--imap-host", "127.0.0.1", "--imap-port", str(closed_port), "--imap-security", "ssl",
        "--no-outgoing", "--password-env", "PR_TEST_PASSWORD",
    )  # fmt: skip


def test_refused_check_prints_the_diagnosis_and_saves_nothing(
    run: Run, password_env: str, closed_port: int
) -> None:
    result = add_account(run, "eve@example.test", *_closed_port_account(closed_port))
    assert result.code == 1
    assert "connection_refused" in result.err
    assert "Nothing was saved" in result.err
    assert not EmailAccount.objects.filter(email="eve@example.test").exists()


def test_account_test_reports_each_side(run: Run, password_env: str, closed_port: int) -> None:
    added = add_account(run, "eve@example.test", *_closed_port_account(closed_port), "--skip-check")
    assert added.code == 0, added.err

    as_json = run("account", "test", "eve@example.test", "--json")
    assert as_json.code == 1
    assert len(as_json.out.strip().splitlines()) == 1
    report = json.loads(as_json.out)
    assert set(report) == {"incoming", "outgoing"}
    assert report["outgoing"] is None  # disabled side
    incoming = report["incoming"]
    assert incoming["ok"] is False
    assert incoming["code"] == "connection_refused"
    assert incoming["message"]

    readable = run("account", "test", "eve@example.test")
    assert readable.code == 1
    lines = readable.out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("incoming: FAILED (connection_refused)")
    assert lines[1] == "outgoing: disabled"


# -- acting as a user ------------------------------------------------------------------


def test_as_user_sees_and_changes_only_what_the_user_may(
    run: Run, domain: EmailDomain, password_env: str
) -> None:
    alice = user_with("alice", "add_emailaccount")
    bob = user_with("bob", "add_emailaccount")
    added = add_account(
        run, "alice@example.test", "--password-env", password_env, "--skip-check",
        "--as-user", "alice",
    )  # fmt: skip
    assert added.code == 0, added.err
    account = EmailAccount.objects.get(email="alice@example.test")
    assert account.owner == alice

    assert json.loads(run("account", "list", "--json", "--as-user", "bob").out) == []
    hidden = run("account", "show", "alice@example.test", "--as-user", "bob")
    assert hidden.code == 2
    assert "There is no account named alice@example.test." in hidden.err
    assert run("account", "remove", "alice@example.test", "--as-user", "bob").code == 2

    do_share_account(account, actor=alice, user=bob, can_read=True)
    listed = json.loads(run("account", "list", "--json", "--as-user", "bob").out)
    assert [(a["email"], a["rights"]) for a in listed] == [("alice@example.test", ["read"])]
    refused = run("account", "remove", "alice@example.test", "--as-user", "bob")
    assert refused.code == 2
    assert "bob does not have the right to manage alice@example.test" in refused.err
    assert EmailAccount.objects.filter(pk=account.pk).exists()

    # Only administrators hand accounts to someone else.
    pushed = add_account(
        run, "push@example.test", "--password-env", password_env, "--skip-check",
        "--owner", "alice", "--as-user", "bob",
    )  # fmt: skip
    assert pushed.code == 2
    assert "--owner: Only an administrator can give an account to another user." in pushed.err


def test_as_user_needs_the_permissions(run: Run, domain: EmailDomain, password_env: str) -> None:
    user_with("plain")
    refused = add_account(
        run, "p@example.test", "--password-env", password_env, "--skip-check", "--as-user", "plain"
    )
    assert refused.code == 2
    assert "plain does not have the right to add accounts." in refused.err
    domain_refused = run(*DOMAIN_ARGS[:2], "other.test", *DOMAIN_ARGS[3:], "--as-user", "plain")
    assert domain_refused.code == 2
    assert "plain does not have the right to manage domains." in domain_refused.err
    unknown = run("account", "list", "--as-user", "nobody")
    assert unknown.code == 2
    assert "--as-user: There is no active user named nobody." in unknown.err


def test_help_explains_the_site_operator(run: Run) -> None:
    result = run("account", "list", "--help")
    assert result.code == 0
    assert "--as-user" in result.out
    assert "site operator" in " ".join(result.out.split())


# -- tokens ------------------------------------------------------------------------------


def test_token_create_list_revoke(run: Run) -> None:
    User.objects.create_user("alice")
    created = run("token", "create", "--user", "alice", "--name", "ci")
    assert created.code == 0, created.err
    raw = created.out.strip()
    assert raw.startswith("pr_")
    assert len(created.out.splitlines()) == 1
    assert "only this once" in created.err

    client = Client(headers={"Authorization": f"Bearer {raw}"})
    assert client.get("/api/v1/me").json()["username"] == "alice"

    listed = json.loads(run("token", "list", "--user", "alice", "--json").out)
    assert [(t["name"], t["active"]) for t in listed] == [("ci", True)]
    assert raw not in run("token", "list", "--user", "alice").out

    token_id = listed[0]["id"]
    assert run("token", "revoke", str(token_id)).code == 0
    assert ApiToken.objects.get(pk=token_id).revoked_at is not None
    assert client.get("/api/v1/me").status_code == 401


def test_tokens_of_others_need_an_administrator(run: Run) -> None:
    User.objects.create_user("alice")
    User.objects.create_user("bob")
    User.objects.create_superuser("root")
    refused = run("token", "create", "--user", "alice", "--as-user", "bob")
    assert refused.code == 2
    assert not ApiToken.objects.exists()
    assert run("token", "create", "--user", "alice", "--as-user", "alice").code == 0
    assert run("token", "create", "--user", "alice", "--as-user", "root").code == 0
    token_id = ApiToken.objects.first().pk  # type: ignore[union-attr]
    hidden = run("token", "revoke", str(token_id), "--as-user", "bob")
    assert hidden.code == 2
    assert f"There is no API token with id {token_id}." in hidden.err
    assert run("token", "create", "--user", "nobody").code == 2


# -- the real console script ------------------------------------------------------------


def _postroom_script() -> str:
    beside_python = Path(sys.executable).with_name("postroom")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("postroom")
    if found is None:
        pytest.fail("the postroom console script is not installed (pip install -e .)")
    return found


def test_console_script_lists_accounts_as_json(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        # The script must use its own SQLite database and keys in the temp dir,
        # never a database or key list the test run was given.
        if key not in {"DATABASE_URL", "POSTROOM_ENCRYPTION_KEYS", "POSTROOM_SECRET_KEY"}
    }
    env["POSTROOM_DATA_DIR"] = str(tmp_path / "data")
    script = _postroom_script()

    def postroom(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    migrated = postroom("migrate")
    assert migrated.returncode == 0, migrated.stderr
    listed = postroom("account", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    accounts = json.loads(listed.stdout)
    # A fresh install has the four disabled A9 templates and nothing else.
    assert sorted(a["email"].split("@")[0] for a in accounts) == [
        "jobs",
        "notifications",
        "sales",
        "support",
    ]
    assert not any(a["incoming_enabled"] or a["outgoing_enabled"] for a in accounts)
