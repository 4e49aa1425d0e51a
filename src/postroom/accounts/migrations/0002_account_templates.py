"""A9: account templates for the common role addresses, disabled until completed."""

from django.db import migrations

TEMPLATES = [
    ("Notifications", "notifications@example.com"),
    ("Support", "support@example.com"),
    ("Sales", "sales@example.com"),
    ("Jobs", "jobs@example.com"),
]


def create_templates(apps, schema_editor):
    EmailAccount = apps.get_model("accounts", "EmailAccount")
    for name, email in TEMPLATES:
        EmailAccount.objects.get_or_create(
            email=email,
            defaults={
                "name": name,
                "is_template": True,
                "incoming_enabled": False,
                "outgoing_enabled": False,
                "awaiting_password": True,
                "folders": ["INBOX"],
            },
        )


def remove_templates(apps, schema_editor):
    EmailAccount = apps.get_model("accounts", "EmailAccount")
    EmailAccount.objects.filter(is_template=True, email__in=[e for _, e in TEMPLATES]).delete()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(create_templates, remove_templates)]
