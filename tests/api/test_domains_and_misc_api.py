from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from postroom.accounts.models import EmailDomain
from tests.api.conftest import ApiClient, grant

pytestmark = pytest.mark.django_db

DOMAIN = {
    "name": "Mail.Example.ORG",
    "incoming_host": "imap.example.org",
    "incoming_port": 993,
    "incoming_security": "ssl",
    "smtp_host": "smtp.example.org",
    "smtp_port": 587,
    "smtp_security": "starttls",
}


def test_domain_crud(admin: User, api_for: Callable) -> None:
    client = api_for(admin)
    created = client.post("/domains", DOMAIN)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["name"] == "mail.example.org"
    assert body["incoming_protocol"] == "imap"  # the model default, not "unticked"
    assert body["smtp_auth"] is True
    assert body["verify_cert"] is True
    assert body["warnings"] == []
    domain_id = body["id"]

    assert client.get(f"/domains/{domain_id}").json()["smtp_port"] == 587
    assert [d["name"] for d in client.get("/domains").json()] == ["mail.example.org"]

    changed = client.patch(f"/domains/{domain_id}", {"smtp_port": 465, "smtp_security": "ssl"})
    assert changed.status_code == 200, changed.json()
    assert changed.json()["smtp_port"] == 465
    assert changed.json()["incoming_host"] == "imap.example.org"

    assert client.delete(f"/domains/{domain_id}").status_code == 204
    assert client.get(f"/domains/{domain_id}").status_code == 404


def test_domain_port_security_warning(admin: User, api_for: Callable) -> None:
    response = api_for(admin).post("/domains", {**DOMAIN, "smtp_port": 587, "smtp_security": "ssl"})
    assert response.status_code == 201
    assert response.json()["warnings"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "example"}, "name"),
        ({"name": "a@example.org"}, "name"),
        ({"incoming_port": 70000}, "incoming_port"),
        ({"incoming_host": ""}, "incoming_host"),
        ({"smtp_port": None}, "smtp_port"),
        ({"incoming_security": "tls"}, "incoming_security"),
    ],
)
def test_bad_domain_input(admin: User, api_for: Callable, change: dict, field: str) -> None:
    response = api_for(admin).post("/domains", {**DOMAIN, **change})
    assert response.status_code == 422, response.json()
    assert field in response.json()["errors"]
    assert not EmailDomain.objects.exists()


def test_duplicate_domain(admin: User, api_for: Callable) -> None:
    client = api_for(admin)
    assert client.post("/domains", DOMAIN).status_code == 201
    again = client.post("/domains", {**DOMAIN, "name": "mail.example.org"})
    assert again.status_code == 422
    assert "name" in again.json()["errors"]


def test_managing_domains_needs_the_permission(admin: User, alice: User, api_for: Callable) -> None:
    as_alice = api_for(alice)
    assert as_alice.post("/domains", DOMAIN).status_code == 403
    domain_id = api_for(admin).post("/domains", DOMAIN).json()["id"]
    # Reading is fine (no secrets, needed to pick a domain); changing is not.
    assert as_alice.get(f"/domains/{domain_id}").status_code == 200
    assert as_alice.patch(f"/domains/{domain_id}", {"smtp_port": 25}).status_code == 403
    assert as_alice.delete(f"/domains/{domain_id}").status_code == 403

    manager = grant(alice, "change_emaildomain")
    assert api_for(manager).patch(f"/domains/{domain_id}", {"smtp_port": 465}).status_code == 200


def test_a_domain_in_use_cannot_be_deleted(admin: User, api_for: Callable) -> None:
    client = api_for(admin)
    domain_id = client.post("/domains", DOMAIN).json()["id"]
    account = client.post(
        "/accounts", {"email": "x@mail.example.org", "password": "pw", "skip_check": True}
    )
    assert account.json()["domain"] == "mail.example.org"
    response = client.delete(f"/domains/{domain_id}")
    assert response.status_code == 409
    assert "mail.example.org" in response.json()["detail"]
    assert EmailDomain.objects.filter(pk=domain_id).exists()


def test_presets(alice: User, api_for: Callable) -> None:
    presets = {p["key"]: p for p in api_for(alice).get("/presets").json()}
    assert presets["gmail"]["incoming"] == {
        "protocol": "imap",
        "host": "imap.gmail.com",
        "port": 993,
        "security": "ssl",
    }
    assert presets["gmail"]["note"]
    assert any(p["outgoing_only"] for p in presets.values())


def test_account_from_a_preset(alice: User, api_for: Callable) -> None:
    response = api_for(alice).post(
        "/accounts",
        {"email": "someone@gmail.com", "preset": "gmail", "password": "app-pw", "skip_check": True},
    )
    assert response.status_code == 201, response.json()
    assert response.json()["servers"]["incoming_host"] == "imap.gmail.com"
    assert response.json()["domain"] is None


def test_me(admin: User, alice: User, api_for: Callable) -> None:
    me = api_for(alice).get("/me").json()
    assert me == {
        "username": "alice",
        "is_superuser": False,
        "can_add_accounts": True,
        "can_manage_domains": False,
        "token_name": "test",
    }
    assert api_for(admin).get("/me").json()["can_manage_domains"] is True


def test_openapi_document_is_served() -> None:
    response = ApiClient(None).get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Postroom API"
    paths = document["paths"]
    for path in (
        "/api/v1/accounts",
        "/api/v1/accounts/{account_id}",
        "/api/v1/accounts/{account_id}/test",
        "/api/v1/domains",
        "/api/v1/presets",
        "/api/v1/me",
    ):
        assert path in paths, sorted(paths)
    schemas = document["components"]["schemas"]
    assert "password" in schemas["AccountCreateIn"]["properties"]
    assert not any("password_encrypted" in str(s) for s in schemas.values())
    assert "password" not in schemas["AccountOut"]["properties"]
