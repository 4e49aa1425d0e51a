from django.urls import path

from postroom.web.views import (
    accounts,
    auth,
    compose,
    domains,
    mail,
    notifications,
    outbox,
    quarantine,
    records,
    routing,
    site,
    sync,
    webhooks,
)

app_name = "web"
urlpatterns = [
    path("", site.home, name="home"),
    path("login/", auth.SignInView.as_view(), name="login"),
    path("logout/", auth.SignOutView.as_view(), name="logout"),
    path("passwords/", auth.awaiting_passwords, name="passwords"),
    # Accounts
    path("accounts/", accounts.account_list, name="account_list"),
    path("accounts/new/", accounts.account_create, name="account_create"),
    path("accounts/form/servers/", accounts.account_form_servers, name="account_form_servers"),
    path("accounts/form/warnings/", accounts.account_form_warnings, name="account_form_warnings"),
    path("accounts/<int:pk>/", accounts.account_detail, name="account_detail"),
    path("accounts/<int:pk>/edit/", accounts.account_edit, name="account_edit"),
    path("accounts/<int:pk>/test/", accounts.account_test, name="account_test"),
    path("accounts/<int:pk>/delete/", accounts.account_delete, name="account_delete"),
    path("accounts/<int:pk>/sharing/", accounts.account_sharing, name="account_sharing"),
    path(
        "accounts/<int:pk>/sharing/<int:access_pk>/remove/",
        accounts.account_unshare,
        name="account_unshare",
    ),
    # Domains
    path("domains/", domains.domain_list, name="domain_list"),
    path("domains/new/", domains.domain_create, name="domain_create"),
    path("domains/warnings/", domains.domain_warnings_view, name="domain_warnings"),
    path("domains/<int:pk>/edit/", domains.domain_edit, name="domain_edit"),
    path("domains/<int:pk>/delete/", domains.domain_delete, name="domain_delete"),
    # Incoming mail: mailboxes, messages, sync status, quarantine
    path("mail/", mail.mail_home, name="mail"),
    path("mail/<int:pk>/", mail.mail_messages, name="mail_messages"),
    path("mail/<int:pk>/threads/", mail.mail_threads, name="mail_threads"),
    path("mail/messages/<int:pk>/", mail.mail_message, name="mail_message"),
    path("mail/messages/<int:pk>/flags/", mail.mail_message_flags, name="mail_message_flags"),
    path(
        "mail/messages/<int:pk>/remote-images/",
        mail.mail_message_remote_images,
        name="mail_message_remote_images",
    ),
    path("mail/messages/<int:pk>/source/", mail.mail_message_source, name="mail_message_source"),
    path(
        "mail/messages/<int:pk>/download/",
        mail.mail_message_download,
        name="mail_message_download",
    ),
    path(
        "mail/messages/<int:pk>/attachments/<int:attachment_pk>/",
        mail.mail_attachment,
        name="mail_attachment",
    ),
    # Reply, reply all, forward (D5) and mail from a record (D4)
    path("mail/messages/<int:pk>/reply/", compose.mail_reply, name="mail_reply"),
    path("records/<int:pk>/compose/", compose.record_compose, name="record_compose"),
    path("sync/", sync.sync_status, name="sync_status"),
    path("sync/<int:pk>/now/", sync.sync_now, name="sync_now"),
    path("sync/<int:pk>/switch/", sync.sync_switch, name="sync_switch"),
    path("quarantine/", quarantine.quarantine, name="quarantine"),
    path(
        "quarantine/<int:pk>/reprocess/",
        quarantine.quarantine_reprocess,
        name="quarantine_reprocess",
    ),
    # Outgoing mail: the outbox, one item, the suppression list
    path("outbox/", outbox.outbox, name="outbox"),
    path("outbox/<int:pk>/", outbox.outbox_item, name="outbox_item"),
    path("outbox/<int:pk>/cancel/", outbox.outbox_cancel, name="outbox_cancel"),
    path("outbox/<int:pk>/retry/", outbox.outbox_retry, name="outbox_retry"),
    path("outbox/suppressed/", outbox.outbox_suppressions, name="outbox_suppressions"),
    path("outbox/suppressed/remove/", outbox.outbox_unsuppress, name="outbox_unsuppress"),
    # Records, contacts, record types; per-account routing
    path("records/", records.record_list, name="record_list"),
    path("records/new/", records.record_create, name="record_create"),
    path("records/<int:pk>/", records.record_detail, name="record_detail"),
    path("records/<int:pk>/status/", records.record_status, name="record_status"),
    path("records/<int:pk>/edit/", records.record_edit, name="record_edit"),
    path("records/held/", routing.held_redirect, name="record_held_redirect"),
    path("records/types/", records.record_type_list, name="record_type_list"),
    path("records/types/new/", records.record_type_edit, name="record_type_create"),
    path("records/types/<int:pk>/", records.record_type_edit, name="record_type_edit"),
    path("contacts/", records.contact_list, name="contact_list"),
    path("contacts/<int:pk>/", records.contact_detail, name="contact_detail"),
    path("accounts/<int:pk>/routing/", routing.routing_settings_view, name="account_routing"),
    path("accounts/<int:pk>/rules/", routing.rule_list, name="account_rules"),
    path("accounts/<int:pk>/rules/new/", routing.rule_edit, name="account_rule_create"),
    path("accounts/<int:pk>/rules/<int:rule_pk>/", routing.rule_edit, name="account_rule_edit"),
    path(
        "accounts/<int:pk>/rules/<int:rule_pk>/delete/",
        routing.rule_delete,
        name="account_rule_delete",
    ),
    path(
        "accounts/<int:pk>/rules/<int:rule_pk>/move/", routing.rule_move, name="account_rule_move"
    ),
    path("accounts/<int:pk>/held/", routing.held_list, name="account_held"),
    path("accounts/<int:pk>/held/release/", routing.held_release, name="account_held_release"),
    path("accounts/<int:pk>/held/reroute/", routing.held_reroute, name="account_held_reroute"),
    # Notifications (E3)
    path("notifications/", notifications.notification_list, name="notification_list"),
    path(
        "notifications/<int:pk>/read/",
        notifications.notification_read,
        name="notification_read",
    ),
    path(
        "notifications/read-all/",
        notifications.notification_read_all,
        name="notification_read_all",
    ),
    # Webhooks: subscriptions, secret, test, delivery log
    path("webhooks/", webhooks.webhook_list, name="webhook_list"),
    path("webhooks/new/", webhooks.webhook_create, name="webhook_create"),
    path("webhooks/<int:pk>/edit/", webhooks.webhook_edit, name="webhook_edit"),
    path("webhooks/<int:pk>/delete/", webhooks.webhook_delete, name="webhook_delete"),
    path("webhooks/<int:pk>/secret/", webhooks.webhook_rotate, name="webhook_rotate"),
    path("webhooks/<int:pk>/test/", webhooks.webhook_test, name="webhook_test"),
    path("webhooks/<int:pk>/deliveries/", webhooks.webhook_deliveries, name="webhook_deliveries"),
    path(
        "webhooks/<int:pk>/deliveries/<int:delivery_pk>/redeliver/",
        webhooks.webhook_redeliver,
        name="webhook_redeliver",
    ),
    # Tokens, settings, events
    path("tokens/", site.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", site.token_revoke, name="token_revoke"),
    path("settings/", site.site_settings, name="site_settings"),
    path("events/", site.events, name="events"),
]
