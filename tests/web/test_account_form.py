"""The account form: sections, bad input, the server check, and secrets never shown."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from postroom.accounts.models import EmailAccount, EmailDomain
from tests.servers.sockets import ClosedPort
from tests.web.conftest import account_post, client_for, make_account

pytestmark = pytest.mark.django_db

SECRET = "Sup3r-Secret-Pw!"
SMTP_SECRET = "Smtp-0nly-Secret#"


def create(user: User, **overrides: Any) -> str:
    response = client_for(user).post(reverse("web:account_create"), account_post(**overrides))
    assert response.status_code == 200, "a refused form is shown again, not redirected"
    return response.content.decode()


def test_create_form_is_grouped_into_sections(admin: User) -> None:
    html = client_for(admin).get(reverse("web:account_create")).content.decode()
    for section in ("identity", "incoming", "outgoing", "security", "sender", "defaults"):
        assert f'id="section-{section}"' in html
    assert 'type="password"' in html


def test_creating_an_account_from_a_domain(admin: User, domain: EmailDomain) -> None:
    client = client_for(admin)
    response = client.post(reverse("web:account_create"), account_post(owner=admin.pk))
    assert response.status_code == 302
    account = EmailAccount.objects.get(email="new@example.test")
    assert response["Location"] == reverse("web:account_detail", args=[account.pk])
    assert account.domain == domain  # A1: derived from the address
    assert account.owner == admin
    assert account.incoming_host == ""  # inherited, not copied
    assert account.get_password() == "pw-new"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"email": "not-an-address"}, "Enter a valid email address."),
        ({"email": "x@unknown-domain.test"}, "No servers known for unknown-domain.test"),
        ({"incoming_port": "70000"}, "Ensure this value is less than or equal to 65535."),
        ({"incoming_port": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"password": None}, "Enter the password, or mark the account as awaiting its password."),
        (
            {"outgoing_enabled": None, "default_outgoing": "on"},
            "The default outgoing account must have outgoing enabled.",
        ),
        (
            {"incoming_enabled": None, "default_incoming": "on"},
            "The default incoming account must have incoming enabled.",
        ),
        ({"verify_cert": None}, "Confirm that you want to turn certificate verification off."),
        ({"ca_cert": "not a pem"}, "Paste the CA certificate in PEM form"),
    ],
)
def test_bad_input_gets_a_specific_message_and_saves_nothing(
    admin: User, domain: EmailDomain, overrides: dict[str, Any], message: str
) -> None:
    before = EmailAccount.objects.count()
    html = create(admin, **overrides)
    assert message in html
    assert "Nothing was saved" in html
    assert EmailAccount.objects.count() == before


def test_duplicate_address_is_refused(admin: User, domain: EmailDomain) -> None:
    make_account("new@example.test", owner=admin, name="first")
    html = create(admin)
    assert "already exists" in html
    assert EmailAccount.objects.filter(email="new@example.test").count() == 1


def test_a_second_default_moves_the_mark(admin: User, domain: EmailDomain) -> None:
    old = make_account("old@example.test", owner=admin, default_outgoing=True)
    response = client_for(admin).post(
        reverse("web:account_create"), account_post(default_outgoing="on")
    )
    assert response.status_code == 302
    old.refresh_from_db()
    assert not old.default_outgoing
    assert EmailAccount.objects.get(default_outgoing=True).email == "new@example.test"


def test_pop3_can_be_switched_off_for_new_accounts(admin: User, domain: EmailDomain) -> None:
    client = client_for(admin)
    client.post(reverse("web:site_settings"), {})  # unchecked: POP3 off
    html = create(admin, incoming_protocol="pop3", incoming_port="995")
    assert "POP3 is switched off for new accounts" in html


def test_failed_check_shows_the_diagnosis_and_saves_nothing(
    admin: User, domain: EmailDomain
) -> None:
    with ClosedPort() as closed:
        html = create(
            admin,
            skip_check=None,
            password=SECRET,
            incoming_host="127.0.0.1",
            incoming_port=str(closed.port),
            smtp_host="127.0.0.1",
            smtp_port=str(closed.port),
        )
    assert 'id="check-report"' in html
    assert 'id="test-incoming"' in html and 'id="test-outgoing"' in html
    assert 'data-code="connection_refused"' in html
    assert SECRET not in html
    assert not EmailAccount.objects.filter(email="new@example.test").exists()


def test_saved_passwords_never_appear_in_any_page(admin: User, domain: EmailDomain) -> None:
    client = client_for(admin)
    response = client.post(
        reverse("web:account_create"),
        account_post(password=SECRET, smtp_password=SMTP_SECRET, smtp_login="smtp-user"),
    )
    assert response.status_code == 302
    account = EmailAccount.objects.get(email="new@example.test")
    assert account.get_password() == SECRET
    pages = [
        reverse("web:account_list"),
        reverse("web:account_detail", args=[account.pk]),
        reverse("web:account_edit", args=[account.pk]),
        reverse("web:account_sharing", args=[account.pk]),
        reverse("web:account_delete", args=[account.pk]),
        reverse("web:events"),
    ]
    for url in pages:
        html = client.get(url).content.decode()
        assert SECRET not in html and SMTP_SECRET not in html, url
        assert account.password_encrypted not in html, url
    edit = client.get(reverse("web:account_edit", args=[account.pk])).content.decode()
    assert "A password is set" in edit
    assert "A separate SMTP password is set" in edit

    # Re-rendered after an error, the typed password is not sent back either.
    html = client.post(
        reverse("web:account_edit", args=[account.pk]),
        account_post(password=SECRET, incoming_port="70000"),
    ).content.decode()
    assert "less than or equal to 65535" in html
    assert SECRET not in html


def test_editing_keeps_the_stored_password_when_left_empty(
    admin: User, domain: EmailDomain
) -> None:
    account = make_account("keep@example.test", owner=admin, password=SECRET)
    response = client_for(admin).post(
        reverse("web:account_edit", args=[account.pk]),
        account_post(
            email="keep@example.test",
            name="Renamed",
            password="",
            incoming_protocol="imap",
            incoming_host="imap.example.test",
            incoming_port="993",
            incoming_security="ssl",
        ),
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.name == "Renamed"
    assert account.get_password() == SECRET


def test_non_admins_own_what_they_create(alice: User, admin: User, domain: EmailDomain) -> None:
    client = client_for(alice)
    page = client.get(reverse("web:account_create")).content.decode()
    owner_select = re.search(r'<select name="owner".*?</select>', page, re.S)
    assert owner_select is not None
    assert f'value="{alice.pk}"' in owner_select.group()
    # Cannot give an account to someone else.
    assert f'value="{admin.pk}"' not in owner_select.group()
    response = client.post(reverse("web:account_create"), account_post(owner=alice.pk))
    assert response.status_code == 302
    assert EmailAccount.objects.get(email="new@example.test").owner == alice
    html = client.post(
        reverse("web:account_create"), account_post(email="x@example.test", owner=admin.pk)
    ).content.decode()
    assert "Select a valid choice" in html


def test_users_without_the_add_permission_cannot_create(make_user: Any) -> None:
    reader = make_user("reader", can_add=False)
    assert client_for(reader).get(reverse("web:account_create")).status_code == 403
    assert (
        b'href="/accounts/new/"' not in client_for(reader).get(reverse("web:account_list")).content
    )


def test_delete_asks_then_deletes(admin: User, domain: EmailDomain) -> None:
    account = make_account("gone@example.test", owner=admin)
    client = client_for(admin)
    assert (
        b"gone@example.test" in client.get(reverse("web:account_delete", args=[account.pk])).content
    )
    response = client.post(reverse("web:account_delete", args=[account.pk]))
    assert response["Location"] == reverse("web:account_list")
    assert not EmailAccount.objects.filter(pk=account.pk).exists()
