"""Every page renders for an admin, and anonymous visitors are sent to sign in."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from postroom.accounts.models import EmailDomain
from tests.web.conftest import client_for, make_account

pytestmark = pytest.mark.django_db


def test_every_page_renders_for_an_admin(admin: User, domain: EmailDomain) -> None:
    account = make_account("a@example.test", owner=admin)
    client = client_for(admin)
    urls = [
        reverse("web:account_list"),
        reverse("web:account_create"),
        reverse("web:account_detail", args=[account.pk]),
        reverse("web:account_edit", args=[account.pk]),
        reverse("web:account_delete", args=[account.pk]),
        reverse("web:account_sharing", args=[account.pk]),
        reverse("web:domain_list"),
        reverse("web:domain_create"),
        reverse("web:domain_edit", args=[domain.pk]),
        reverse("web:domain_delete", args=[domain.pk]),
        reverse("web:tokens"),
        reverse("web:site_settings"),
        reverse("web:events"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert 'dir="ltr"' in html
        assert "X-CSRFToken" in html  # htmx sends the token


def test_home_goes_to_the_account_list(admin: User) -> None:
    response = client_for(admin).get(reverse("web:home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("web:account_list")


@pytest.mark.parametrize(
    "name", ["web:account_list", "web:domain_list", "web:tokens", "web:events"]
)
def test_anonymous_is_sent_to_sign_in(client, name: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:login"))


def test_htmx_is_served_from_our_static_files(admin: User) -> None:
    html = client_for(admin).get(reverse("web:account_list")).content.decode()
    assert "/static/web/htmx.min.js" in html
    # No script or stylesheet from anywhere else (a CDN): every src/href is local.
    assert not re.search(r'(src|href)="(https?:)?//', html)
