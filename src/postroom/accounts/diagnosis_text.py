"""User-facing words for connection diagnoses and port warnings (A14, C1).

This is the only place that turns :class:`DiagnosisCode` and
:class:`PortWarningCode` into sentences; the UI, API and CLI all call it.
Every text is translated with Django's gettext; facts come from
``Diagnosis.params`` (see ``postroom.mail.diagnostics.mapping``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from django.utils.translation import gettext as _

from postroom.mail.diagnostics import Diagnosis, DiagnosisCode, PortWarning, PortWarningCode

Text = tuple[str, str]  # (one-line message, what to do about it)


def describe(diagnosis: Diagnosis) -> Text:
    """(message, fix) for a diagnosis; the fix is empty for success."""
    if diagnosis.ok:
        return _("Connection and login succeeded."), ""
    facts = _Facts(diagnosis.params)
    if diagnosis.code is None:
        return _unexpected(facts)
    return _DESCRIBERS[diagnosis.code](facts)


def describe_warning(warning: PortWarning) -> str:
    facts = {
        "port": warning.port,
        "security": security_label(str(warning.security)),
        "suggested": security_label(str(warning.suggested_security)),
        "alternative_port": warning.alternative_port,
    }
    if warning.code is PortWarningCode.SSL_ON_STARTTLS_PORT:
        return (
            _(
                "Port %(port)s normally uses STARTTLS, not SSL/TLS. Choose STARTTLS, "
                "or keep SSL/TLS and use port %(alternative_port)s."
            )
            % facts
        )
    if warning.code is PortWarningCode.STARTTLS_ON_SSL_PORT:
        return (
            _(
                "Port %(port)s normally uses SSL/TLS from the first byte, not STARTTLS. "
                "Choose SSL/TLS, or keep STARTTLS and use port %(alternative_port)s."
            )
            % facts
        )
    return _("Port %(port)s expects an encrypted connection. Choose SSL/TLS.") % facts


def security_label(value: str) -> str:
    labels = {
        "ssl": _("SSL/TLS"),
        "starttls": _("STARTTLS"),
        "none": _("None (unencrypted)"),
    }
    return labels.get(value, value)


# ---------------------------------------------------------------- per code


class _Facts(dict[str, str]):
    """Params for %-formatting; a missing fact shows as "?" instead of crashing a page."""

    def __missing__(self, key: str) -> str:
        return "?"


def _with_reply(message: str, params: Mapping[str, str]) -> str:
    reply = params.get("server_reply")
    if not reply:
        return message
    return message + " " + _("The server said: %(reply)s") % {"reply": reply}


def _dns_failure(p: Mapping[str, str]) -> Text:
    return (
        _("The server name %(host)s cannot be found.") % p,
        _("Check the spelling of the server name against your provider's instructions."),
    )


def _connection_refused(p: Mapping[str, str]) -> Text:
    return (
        _("%(host)s refuses connections on port %(port)s.") % p,
        _(
            "Check the port number, and that the mail service is running and reachable "
            "through any firewall."
        ),
    )


def _connection_failed(p: Mapping[str, str]) -> Text:
    return (
        _("No connection to %(host)s on port %(port)s could be opened.") % p,
        _("Check this machine's network connection and the server name."),
    )


def _timeout(p: Mapping[str, str]) -> Text:
    phase = p.get("phase")
    if phase == "connect":
        return (
            _("%(host)s did not answer on port %(port)s in time.") % p,
            _("Check host and port; a firewall may be silently dropping the connection."),
        )
    if phase in {"greeting", "tls"}:
        return (
            _("The server accepted the connection on port %(port)s but never answered.") % p,
            _(
                "The port may expect a different security setting (SSL/TLS or STARTTLS), "
                "or the mail service is stuck. Check port and security."
            ),
        )
    return (
        _("The server stopped answering during the test."),
        _("Try again later; if it keeps happening, contact the mail provider."),
    )


def _connection_lost(p: Mapping[str, str]) -> Text:
    return (
        _("The server closed the connection unexpectedly."),
        _("Try again later; if it keeps happening, check the port and security settings."),
    )


def _tls_mismatch(p: Mapping[str, str]) -> Text:
    suggested = p.get("suggested_security")
    facts = _Facts({**p, "suggested": security_label(suggested or "")})
    if suggested == "ssl" and "suggested_port" in p:
        return (
            _("Port %(port)s does not offer encryption, but port %(suggested_port)s does.") % facts,
            _("Set security to SSL/TLS and the port to %(suggested_port)s.") % facts,
        )
    if suggested == "ssl":
        return (
            _("The server speaks implicit TLS on port %(port)s.") % facts,
            _("Set security to SSL/TLS."),
        )
    if suggested == "starttls":
        return (
            _(
                "The server on port %(port)s expects a plain connection upgraded with "
                "STARTTLS, not SSL/TLS from the first byte."
            )
            % facts,
            _("Set security to STARTTLS."),
        )
    if suggested == "none":
        return (
            _("The server on port %(port)s offers no encryption at all.") % facts,
            _(
                "Use the provider's encrypted port if there is one. Choose security None "
                "only on a trusted network, and allow unencrypted login explicitly."
            ),
        )
    return (
        _("The server did not answer in the configured security mode."),
        _(
            "Check the security setting: SSL/TLS usually goes with ports 993, 995 and 465, "
            "STARTTLS with 143, 110 and 587."
        ),
    )


def _tls_failed(p: Mapping[str, str]) -> Text:
    return (
        _("The encrypted connection to %(host)s could not be set up.") % p,
        _(
            "The server may only offer outdated encryption (TLS 1.2 or newer is required). "
            "Check the security setting and ask the server administrator."
        ),
    )


def _certificate_invalid(p: Mapping[str, str]) -> Text:
    problem = p.get("problem")
    if problem == "expired":
        return (
            _("The server's certificate has expired."),
            _("The server administrator must renew the certificate."),
        )
    if problem == "not_yet_valid":
        return (
            _("The server's certificate is not valid yet."),
            _("Check this machine's clock; otherwise the administrator must fix the certificate."),
        )
    if problem == "self_signed":
        return (
            _("The server's certificate is self-signed."),
            _(
                "Add the server's certificate as trusted for this account. Turning off "
                "certificate verification also works, but then anyone in between could read "
                "the password and the mail."
            ),
        )
    if problem == "hostname_mismatch":
        return (
            _("The server's certificate is not issued for %(host)s.") % p,
            _("Use the exact server name your provider gives; it must match the certificate."),
        )
    if problem == "untrusted":
        return (
            _("The server's certificate is issued by an authority this system does not trust."),
            _(
                "Add the issuing CA certificate to this account, or install it in the "
                "system's trust store."
            ),
        )
    return (
        _("The server's certificate was rejected."),
        _("Ask the server administrator to check the certificate."),
    )


def _starttls_unavailable(p: Mapping[str, str]) -> Text:
    return (
        _("The server on port %(port)s does not offer STARTTLS.") % p,
        _(
            "Use SSL/TLS on the provider's encrypted port (993, 995 or 465). Choose security "
            "None only if you accept that the password travels unencrypted."
        ),
    )


def _plaintext_refused(p: Mapping[str, str]) -> Text:
    if p.get("refused_by") == "client":
        return (
            _("Logging in over an unencrypted connection is not allowed for this account."),
            _(
                "Set security to STARTTLS or SSL/TLS, or explicitly allow unencrypted login "
                "(the password can then be read on the network)."
            ),
        )
    return (
        _with_reply(_("The server refuses a password over an unencrypted connection."), p),
        _("Set security to STARTTLS or SSL/TLS."),
    )


def _auth_failed(p: Mapping[str, str]) -> Text:
    hint = p.get("hint")
    if hint == "app_password_required":
        return (
            _with_reply(_("The provider requires an app password for mail programs."), p),
            _(
                "Create an app password in the account's security settings and enter it "
                "instead of the normal password."
            ),
        )
    if hint == "web_login_required":
        return (
            _with_reply(_("The provider wants you to sign in through its website first."), p),
            _("Sign in to the webmail once, confirm any security prompt, then try again."),
        )
    if hint == "password_expired":
        return (
            _with_reply(_("The password has expired."), p),
            _("Change the password at the provider, then enter the new one here."),
        )
    if hint == "auth_disabled":
        return (
            _with_reply(_("Password login is switched off for this mailbox."), p),
            _(
                "Ask the mail administrator to enable SMTP authentication for the mailbox, "
                "or sign in with OAuth2."
            ),
        )
    if hint == "password_not_ascii":
        return (
            _("The password contains characters this server cannot accept."),
            _(
                "Use a password made only of ASCII letters, digits and symbols, or turn off "
                "the ASCII-only option if the server accepts UTF-8."
            ),
        )
    return (
        _with_reply(_("The server rejected the login."), p),
        _(
            "Check the user name and password. Some servers expect the full email address "
            "as login, others only the part before the @, Exchange servers sometimes "
            "DOMAIN\\user. Gmail, Yahoo, iCloud and others need an app password, and IMAP "
            "or POP access may have to be switched on in the webmail settings first."
        ),
    )


def _auth_unsupported(p: Mapping[str, str]) -> Text:
    return (
        _with_reply(_("The server offers no login on this connection."), p),
        _(
            "If the server accepts mail from this machine without login, switch "
            "authentication off; otherwise check the port and security settings."
        ),
    )


def _folder_missing(p: Mapping[str, str]) -> Text:
    return (
        _("The folder “%(folder)s” does not exist on the server.") % p,
        _(
            "Check the folder name, including upper and lower case and the hierarchy "
            "separator, or create the folder in the webmail."
        ),
    )


def _relay_denied(p: Mapping[str, str]) -> Text:
    return (
        _with_reply(_("The server refuses to send mail for this account."), p),
        _(
            "Switch on SMTP authentication with a valid login, or ask the server "
            "administrator to allow relaying from this machine."
        ),
    )


def _sender_rejected(p: Mapping[str, str]) -> Text:
    return (
        _with_reply(_("The server does not accept %(address)s as sender.") % p, p),
        _("Use an address this login may send from, or verify it with the provider."),
    )


def _recipient_rejected(p: Mapping[str, str]) -> Text:
    return (
        _with_reply(_("The server does not accept the test recipient %(address)s.") % p, p),
        _("Check the test recipient address."),
    )


def _temporary_failure(p: Mapping[str, str]) -> Text:
    return (
        _with_reply(_("The server is temporarily unable to handle the request."), p),
        _("Try again in a few minutes."),
    )


def _protocol_error(p: Mapping[str, str]) -> Text:
    return (
        _with_reply(_("The server's answer does not fit the chosen protocol."), p),
        _("Check that host, port and protocol (IMAP, POP3 or SMTP) belong together."),
    )


def _unexpected(p: Mapping[str, str]) -> Text:
    return (
        _("The test failed for an unexpected reason."),
        _("The mailer log has the details; please report it if it keeps happening."),
    )


_DESCRIBERS: dict[DiagnosisCode, Callable[[Mapping[str, str]], Text]] = {
    DiagnosisCode.DNS_FAILURE: _dns_failure,
    DiagnosisCode.CONNECTION_REFUSED: _connection_refused,
    DiagnosisCode.CONNECTION_FAILED: _connection_failed,
    DiagnosisCode.TIMEOUT: _timeout,
    DiagnosisCode.CONNECTION_LOST: _connection_lost,
    DiagnosisCode.TLS_MISMATCH: _tls_mismatch,
    DiagnosisCode.TLS_FAILED: _tls_failed,
    DiagnosisCode.CERTIFICATE_INVALID: _certificate_invalid,
    DiagnosisCode.STARTTLS_UNAVAILABLE: _starttls_unavailable,
    DiagnosisCode.PLAINTEXT_REFUSED: _plaintext_refused,
    DiagnosisCode.AUTH_FAILED: _auth_failed,
    DiagnosisCode.AUTH_UNSUPPORTED: _auth_unsupported,
    DiagnosisCode.FOLDER_MISSING: _folder_missing,
    DiagnosisCode.SMTP_RELAY_DENIED: _relay_denied,
    DiagnosisCode.SMTP_SENDER_REJECTED: _sender_rejected,
    DiagnosisCode.SMTP_RECIPIENT_REJECTED: _recipient_rejected,
    DiagnosisCode.TEMPORARY_FAILURE: _temporary_failure,
    DiagnosisCode.PROTOCOL_ERROR: _protocol_error,
    DiagnosisCode.UNEXPECTED: _unexpected,
}
