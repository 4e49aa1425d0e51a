import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction

from postroom.accounts.actions import do_save_account, do_share_account
from postroom.accounts.forms import AccountForm, DomainForm
from postroom.accounts.models import EmailAccount, EmailDomain, Right
from postroom.accounts.permissions import accounts_for, has_right, visible_accounts
from postroom.core.models import SiteSettings

pytestmark = pytest.mark.django_db


def make_account(email: str, **extra) -> EmailAccount:
    fields = {
        "name": email,
        "email": email,
        "incoming_protocol": "imap",
        "incoming_host": "imap.example.test",
        "incoming_port": 993,
        "incoming_security": "ssl",
        "smtp_host": "smtp.example.test",
        "smtp_port": 465,
        "smtp_security": "ssl",
    }
    fields.update(extra)
    return do_save_account(EmailAccount(**fields), actor=None, password="pw", check=False)


def test_templates_exist_after_install_and_are_disabled():
    templates = EmailAccount.objects.filter(is_template=True)
    assert {a.email.split("@")[0] for a in templates} == {
        "notifications",
        "support",
        "sales",
        "jobs",
    }
    for account in templates:
        assert not account.incoming_enabled
        assert not account.outgoing_enabled
        assert account.awaiting_password


def test_database_refuses_a_second_default():
    make_account("a@example.test", default_incoming=True, default_outgoing=True)
    second = make_account("b@example.test")
    for field in ("default_incoming", "default_outgoing"):
        with pytest.raises(IntegrityError), transaction.atomic():
            EmailAccount.objects.filter(pk=second.pk).update(**{field: True})


def test_marking_a_new_default_unmarks_the_old_one():
    first = make_account("a@example.test", default_incoming=True, default_outgoing=True)
    second = make_account("b@example.test", default_incoming=True)
    first.refresh_from_db()
    assert not first.default_incoming
    assert first.default_outgoing  # only the kind that was re-marked moves
    assert EmailAccount.objects.get(default_incoming=True) == second


def test_password_stored_encrypted_only():
    account = make_account("c@example.test")
    row = EmailAccount.objects.filter(pk=account.pk).values().get()
    assert "pw" not in {str(v) for v in row.values()}
    assert account.get_password() == "pw"
    assert account.get_smtp_password() == "pw"  # A6: SMTP falls back to the incoming password


def test_sharing_rights():
    owner = User.objects.create_user("owner")
    reader = User.objects.create_user("reader")
    sender_group = Group.objects.create(name="senders")
    member = User.objects.create_user("member")
    member.groups.add(sender_group)
    stranger = User.objects.create_user("stranger")
    account = make_account("d@example.test", owner=owner)
    do_share_account(account, actor=owner, user=reader, can_read=True)
    do_share_account(account, actor=owner, group=sender_group, can_read=False, can_send=True)

    assert has_right(owner, account, Right.MANAGE)
    assert has_right(reader, account, Right.READ)
    assert not has_right(reader, account, Right.SEND)
    assert has_right(member, account, Right.SEND)
    assert not has_right(member, account, Right.MANAGE)
    assert list(visible_accounts(stranger)) == []
    assert list(accounts_for(stranger, Right.READ)) == []
    assert account in visible_accounts(member)


def form(**data) -> AccountForm:
    base = {
        "email": "e@example.test",
        "incoming_enabled": True,
        "outgoing_enabled": True,
        "verify_cert": True,
        "password": "pw",
    }
    base.update(data)
    return AccountForm(data=base)


def test_form_derives_servers_from_domain():
    EmailDomain.objects.create(
        name="example.test",
        incoming_host="mail.example.test",
        incoming_port=993,
        incoming_security="ssl",
        smtp_host="mail.example.test",
        smtp_port=587,
        smtp_security="starttls",
    )
    f = form()
    assert f.is_valid(), f.errors
    assert f.cleaned_data["domain"].name == "example.test"
    assert f.cleaned_data["name"] == "e@example.test"


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"email": "not-an-address"}, "email", "valid email"),
        ({"email": "x@unknown.test"}, "incoming_host", "No servers known for unknown.test"),
        (
            {"incoming_host": "h", "incoming_port": 70000, "incoming_security": "ssl"},
            "incoming_port",
            "65535",
        ),
        (
            {
                "password": "",
                "incoming_host": "h",
                "incoming_port": 993,
                "incoming_security": "ssl",
                "incoming_protocol": "imap",
                "outgoing_enabled": False,
            },
            "password",
            "awaiting its password",
        ),
        (
            {
                "incoming_host": "h",
                "incoming_port": 143,
                "incoming_security": "none",
                "incoming_protocol": "imap",
                "outgoing_enabled": False,
            },
            "incoming_security",
            "unencrypted",
        ),
        (
            {
                "incoming_host": "h",
                "incoming_port": 993,
                "incoming_security": "ssl",
                "incoming_protocol": "imap",
                "outgoing_enabled": False,
                "default_outgoing": True,
            },
            "default_outgoing",
            "outgoing enabled",
        ),
        (
            {
                "incoming_host": "h",
                "incoming_port": 993,
                "incoming_security": "ssl",
                "incoming_protocol": "imap",
                "outgoing_enabled": False,
                "verify_cert": False,
            },
            "confirm_no_verify",
            "Confirm",
        ),
        (
            {
                "incoming_host": "h",
                "incoming_port": 993,
                "incoming_security": "ssl",
                "incoming_protocol": "imap",
                "outgoing_enabled": False,
                "ascii_password": True,
                "password": "zażółć",
            },
            "password",
            "ASCII",
        ),
    ],
)
def test_form_bad_input_is_specific_and_saves_nothing(data, field, fragment):
    before = EmailAccount.objects.count()
    f = form(**data)
    assert not f.is_valid()
    assert any(fragment in message for message in f.errors.get(field, [])), f.errors
    assert EmailAccount.objects.count() == before


def test_form_refuses_duplicate_address():
    make_account("dup@example.test")
    f = form(
        email="DUP@example.test",
        incoming_host="h",
        incoming_port=993,
        incoming_security="ssl",
        incoming_protocol="imap",
        outgoing_enabled=False,
    )
    assert not f.is_valid()
    assert "email" in f.errors


def test_form_refuses_pop3_for_new_accounts_when_switched_off():
    site = SiteSettings.load()
    site.allow_pop3_for_new_accounts = False
    site.save()
    f = form(
        incoming_protocol="pop3",
        incoming_host="h",
        incoming_port=995,
        incoming_security="ssl",
        outgoing_enabled=False,
    )
    assert not f.is_valid()
    assert "POP3" in " ".join(f.errors["incoming_protocol"])


def test_domain_form_needs_confirmation_to_turn_verification_off():
    data = {
        "name": "Example.TEST",
        "incoming_protocol": "imap",
        "incoming_host": "mail.example.test",
        "incoming_port": 993,
        "incoming_security": "ssl",
        "smtp_security": "starttls",
        "verify_cert": False,
    }
    refused = DomainForm(data=data)
    assert not refused.is_valid()
    assert "confirm_no_verify" in refused.errors
    accepted = DomainForm(data={**data, "confirm_no_verify": True})
    assert accepted.is_valid(), accepted.errors
    assert accepted.cleaned_data["name"] == "example.test"
