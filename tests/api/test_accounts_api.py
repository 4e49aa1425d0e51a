from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.core.actions import do_create_api_token, do_revoke_api_token
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db

PASSWORD = "Tr0ub4dor&3-not-echoed"


def new_account(email: str = "carol@example.test", **extra: object) -> dict[str, object]:
    return {"email": email, "password": PASSWORD, "skip_check": True, **extra}


# -- authentication --------------------------------------------------------------


def test_every_endpoint_needs_a_token(alice: User) -> None:
    anonymous = ApiClient(None)
    for path in ("/accounts", "/accounts/1", "/domains", "/presets", "/me"):
        assert anonymous.get(path).status_code == 401, path
    assert anonymous.post("/accounts", new_account()).status_code == 401
    assert ApiClient("pr_not-a-real-token").get("/accounts").status_code == 401
    assert EmailAccount.objects.filter(email="carol@example.test").count() == 0


def test_a_revoked_token_stops_working(alice: User) -> None:
    token, raw = do_create_api_token(alice, "laptop")
    client = ApiClient(raw)
    me = client.get("/me")
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert me.json()["token_name"] == "laptop"
    do_revoke_api_token(token)
    assert client.get("/me").status_code == 401


def test_an_inactive_users_token_stops_working(alice: User, api_for: Callable) -> None:
    client = api_for(alice)
    alice.is_active = False
    alice.save()
    assert client.get("/accounts").status_code == 401


# -- permissions --------------------------------------------------------------------


def test_users_see_only_their_own_and_shared_accounts(
    alice: User, bob: User, domain: EmailDomain, api_for: Callable
) -> None:
    as_alice, as_bob = api_for(alice), api_for(bob)
    created = as_alice.post("/accounts", new_account("alice@example.test"))
    assert created.status_code == 201, created.json()
    account_id = created.json()["id"]
    assert created.json()["owner"] == "alice"
    assert set(created.json()["rights"]) == {"read", "send", "manage"}

    # Bob: not in the list, and a direct look gives 404 for every verb (never 403:
    # that would tell him the account exists).
    assert "alice@example.test" not in {a["email"] for a in as_bob.get("/accounts").json()}
    assert as_bob.get(f"/accounts/{account_id}").status_code == 404
    assert as_bob.patch(f"/accounts/{account_id}", {"sender_name": "x"}).status_code == 404
    assert as_bob.delete(f"/accounts/{account_id}").status_code == 404
    assert as_bob.post(f"/accounts/{account_id}/test").status_code == 404
    # The shipped templates have no owner: only administrators see them.
    assert as_bob.get("/accounts").json() == []

    account = EmailAccount.objects.get(pk=account_id)
    do_share_account(account, actor=alice, user=bob, can_read=True)
    listed = as_bob.get("/accounts").json()
    assert [a["email"] for a in listed] == ["alice@example.test"]
    assert listed[0]["rights"] == ["read"]
    assert as_bob.get(f"/accounts/{account_id}").status_code == 200
    # Visible but not managed: 403, and nothing changes.
    refused = as_bob.patch(f"/accounts/{account_id}", {"sender_name": "Bob"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert as_bob.delete(f"/accounts/{account_id}").status_code == 403
    assert as_bob.post(f"/accounts/{account_id}/test").status_code == 403
    account.refresh_from_db()
    assert account.sender_name == ""

    do_share_account(account, actor=alice, user=bob, can_manage=True)
    changed = as_bob.patch(f"/accounts/{account_id}", {"sender_name": "Bob", "skip_check": True})
    assert changed.status_code == 200, changed.json()
    assert changed.json()["sender_name"] == "Bob"


def test_administrators_see_everything(
    admin: User, alice: User, domain: EmailDomain, api_for: Callable
) -> None:
    api_for(alice).post("/accounts", new_account("alice@example.test"))
    emails = {a["email"] for a in api_for(admin).get("/accounts").json()}
    assert "alice@example.test" in emails
    assert "support@example.com" in emails  # the A9 templates


def test_adding_accounts_needs_the_permission(
    make_user: Callable, domain: EmailDomain, api_for: Callable
) -> None:
    plain = make_user("plain", can_add=False)
    response = api_for(plain).post("/accounts", new_account())
    assert response.status_code == 403
    assert not EmailAccount.objects.filter(email="carol@example.test").exists()


def test_only_administrators_give_accounts_to_other_users(
    admin: User, alice: User, bob: User, domain: EmailDomain, api_for: Callable
) -> None:
    refused = api_for(alice).post("/accounts", new_account(owner="bob"))
    assert refused.status_code == 422
    assert "owner" in refused.json()["errors"]
    created = api_for(admin).post("/accounts", new_account(owner="bob"))
    assert created.status_code == 201
    assert created.json()["owner"] == "bob"
    unknown = api_for(admin).post("/accounts", new_account("d@example.test", owner="nobody"))
    assert unknown.status_code == 422
    assert unknown.json()["errors"]["owner"] == ["There is no active user named nobody."]


# -- create, read, update, delete -------------------------------------------------


def test_create_with_skip_check_inherits_the_domains_servers(
    alice: User, domain: EmailDomain, api_for: Callable
) -> None:
    response = api_for(alice).post("/accounts", new_account(sender_name="Carol"))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "carol@example.test"
    assert body["domain"] == "example.test"
    assert body["has_password"] is True
    assert body["awaiting_password"] is False
    assert body["folders"] == ["INBOX"]
    assert body["servers"] == {
        "incoming_protocol": "imap",
        "incoming_host": "imap.example.test",
        "incoming_port": 993,
        "incoming_security": "ssl",
        "smtp_host": "smtp.example.test",
        "smtp_port": 465,
        "smtp_security": "ssl",
        "smtp_auth": True,
    }
    account = EmailAccount.objects.get(pk=body["id"])
    assert account.get_password() == PASSWORD
    assert account.incoming_enabled and account.outgoing_enabled  # omitted means the default


def test_awaiting_password_needs_no_password(
    alice: User, domain: EmailDomain, api_for: Callable
) -> None:
    response = api_for(alice).post(
        "/accounts", {"email": "dave@example.test", "awaiting_password": True}
    )
    assert response.status_code == 201, response.json()
    assert response.json()["awaiting_password"] is True
    assert response.json()["has_password"] is False
    report = api_for(alice).post(f"/accounts/{response.json()['id']}/test").json()
    assert report["incoming"]["code"] == "awaiting_password"


def test_patch_changes_only_what_is_sent(
    alice: User, domain: EmailDomain, api_for: Callable
) -> None:
    client = api_for(alice)
    account_id = client.post("/accounts", new_account(sender_name="Carol")).json()["id"]
    before = EmailAccount.objects.get(pk=account_id).password_encrypted

    response = client.patch(
        f"/accounts/{account_id}",
        {"smtp_port": 587, "smtp_security": "starttls", "skip_check": True},
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["smtp_port"] == 587
    assert body["servers"]["smtp_port"] == 587
    assert body["sender_name"] == "Carol"
    assert body["incoming_enabled"] is True
    assert EmailAccount.objects.get(pk=account_id).password_encrypted == before

    invalid = client.patch(f"/accounts/{account_id}", {"smtp_port": 70000})
    assert invalid.status_code == 422
    assert "smtp_port" in invalid.json()["errors"]
    assert EmailAccount.objects.get(pk=account_id).smtp_port == 587


def test_null_for_a_yes_no_field_means_unchanged(
    alice: User, domain: EmailDomain, api_for: Callable
) -> None:
    client = api_for(alice)
    account_id = client.post("/accounts", new_account()).json()["id"]
    response = client.patch(
        f"/accounts/{account_id}", {"incoming_enabled": None, "skip_check": True}
    )
    assert response.status_code == 200
    assert response.json()["incoming_enabled"] is True


def test_delete(alice: User, domain: EmailDomain, api_for: Callable) -> None:
    client = api_for(alice)
    account_id = client.post("/accounts", new_account()).json()["id"]
    assert client.delete(f"/accounts/{account_id}").status_code == 204
    assert client.get(f"/accounts/{account_id}").status_code == 404
    assert not EmailAccount.objects.filter(pk=account_id).exists()


def test_list_filters(admin: User, domain: EmailDomain, api_for: Callable) -> None:
    client = api_for(admin)
    client.post("/accounts", new_account("one@example.test", login="ONE-login"))
    client.post(
        "/accounts",
        new_account(
            "two@example.test",
            incoming_protocol="pop3",
            incoming_host="pop.other.test",
            incoming_port=995,
            use_for_integration=True,
        ),
    )

    def emails(**params: object) -> set[str]:
        response = client.get("/accounts", **params)
        assert response.status_code == 200, response.json()
        return {a["email"] for a in response.json()}

    assert emails(name="two") == {"two@example.test"}
    assert emails(email="one@") == {"one@example.test"}
    assert emails(login="one-LOGIN") == {"one@example.test"}
    assert emails(host="pop.other") == {"two@example.test"}
    assert emails(host="imap.example.test") == {"one@example.test"}
    assert emails(port=995) == {"two@example.test"}
    assert emails(protocol="pop3") == {"two@example.test"}
    assert emails(protocol="imap") == {"one@example.test"}
    assert emails(integration="true") == {"two@example.test"}
    assert "one@example.test" in emails(integration="false")
    assert emails(owner="admin") == {"one@example.test", "two@example.test"}
    assert emails(owner="nobody") == set()


# -- bad input: 422 with the form's own message, nothing saved ---------------------


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        (new_account("not-an-address"), "email", "Enter a valid email address."),
        (new_account("x@unknown.test"), "incoming_host", "No servers known for unknown.test"),
        (new_account(domain="nosuch.test"), "domain", "There is no domain nosuch.test"),
        (new_account(incoming_port=70000), "incoming_port", "65535"),
        (new_account(smtp_port=0), "smtp_port", "1"),
        ({"email": "carol@example.test"}, "password", "Enter the password"),
        (new_account(incoming_enabled=False, default_incoming=True), "default_incoming", ""),
        (new_account(incoming_security="tls"), "incoming_security", "tls"),
        (new_account(verify_cert=False), "confirm_no_verify", ""),
        (new_account(ca_cert="not a pem"), "ca_cert", "PEM"),
        (new_account(incoming_port="abc"), "incoming_port", ""),
    ],
    ids=[
        "invalid-address",
        "unknown-domain",
        "unknown-domain-by-name",
        "port-out-of-range",
        "port-zero",
        "missing-password",
        "default-incoming-without-incoming",
        "bad-security",
        "no-verify-without-confirmation",
        "bad-ca",
        "port-not-a-number",
    ],
)
def test_bad_input_gives_422_with_field_errors(
    alice: User,
    domain: EmailDomain,
    api_for: Callable,
    payload: dict[str, object],
    field: str,
    message: str,
) -> None:
    before = EmailAccount.objects.count()
    response = api_for(alice).post("/accounts", payload)
    assert response.status_code == 422, response.json()
    body = response.json()
    assert body["code"] == "invalid"
    assert field in body["errors"], body
    assert any(message in text for text in body["errors"][field]), body
    assert EmailAccount.objects.count() == before


def test_duplicate_address(alice: User, domain: EmailDomain, api_for: Callable) -> None:
    client = api_for(alice)
    assert client.post("/accounts", new_account()).status_code == 201
    again = client.post("/accounts", new_account("CAROL@example.test", name="Another"))
    assert again.status_code == 422
    assert again.json()["errors"]["email"] == [
        "Email account with this Email address already exists."
    ]
    assert EmailAccount.objects.filter(email="carol@example.test").count() == 1


def test_a_second_default_moves_the_mark(
    alice: User, domain: EmailDomain, api_for: Callable
) -> None:
    client = api_for(alice)
    first = client.post("/accounts", new_account("a@example.test", default_incoming=True)).json()
    second = client.post("/accounts", new_account("b@example.test", default_incoming=True)).json()
    assert client.get(f"/accounts/{first['id']}").json()["default_incoming"] is False
    assert client.get(f"/accounts/{second['id']}").json()["default_incoming"] is True


def test_refused_check_returns_the_diagnosis_and_saves_nothing(
    alice: User, api_for: Callable, closed_port: int
) -> None:
    payload = {
        "email": "eve@example.test",
        "password": PASSWORD,
        "incoming_protocol": "imap",
        "incoming_host": "127.0.0.1",
        "incoming_port": closed_port,
        "incoming_security": "ssl",
        "outgoing_enabled": False,
    }
    response = api_for(alice).post("/accounts", payload)
    assert response.status_code == 422, response.json()
    body = response.json()
    assert body["code"] == "check_failed"
    assert body["report"]["ok"] is False
    assert body["report"]["incoming"]["code"] == "connection_refused"
    assert body["report"]["incoming"]["message"]
    assert body["report"]["incoming"]["fix"]
    assert body["report"]["outgoing"] is None
    assert not EmailAccount.objects.filter(email="eve@example.test").exists()


# -- passwords are write-only --------------------------------------------------------


def test_passwords_and_ciphertext_never_appear_in_any_response(
    admin: User, domain: EmailDomain, api_for: Callable
) -> None:
    client = api_for(admin)
    smtp_password = "second-Secret-42"
    created = client.post("/accounts", new_account(smtp_password=smtp_password))
    account = EmailAccount.objects.get(email="carol@example.test")
    secrets = [PASSWORD, smtp_password, account.password_encrypted, account.smtp_password_encrypted]
    responses = [
        created,
        client.get("/accounts"),
        client.get(f"/accounts/{account.pk}"),
        client.patch(f"/accounts/{account.pk}", {"sender_name": "C", "skip_check": True}),
        client.patch(f"/accounts/{account.pk}", {"incoming_port": 70000, "password": PASSWORD}),
        client.get("/openapi.json"),
    ]
    for response in responses:
        text = response.content.decode()
        for secret in secrets:
            assert secret not in text
    body = created.json()
    assert not {key for key in body if "password" in key} - {
        "has_password",
        "has_smtp_password",
        "awaiting_password",
        "ascii_password",
    }
    assert not any("encrypted" in key for key in body)
    assert body["has_smtp_password"] is True
