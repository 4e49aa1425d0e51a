"""Web UI views. They validate with the shared forms and change state only through do_* actions.

Modules: accounts, auth, domains, site (tokens, settings, event log), and for
incoming mail: mail (mailboxes, threads, messages), sync (status page E2) and
quarantine; for outgoing mail: outbox (queue, attempts, suppression list).
"""
