"""Mail protocols, MIME and diagnostics.

This package knows nothing of Django or the database: it takes settings
objects and bytes, returns typed results and raises the exceptions of
:mod:`postroom.mail.errors`. User-facing wording for its codes lives in
exactly one place above it (``postroom.accounts.diagnosis_text``).
"""
