from django.db import migrations

# Names and statuses are English here and translated on display (see
# RecordType.display_name and postroom.records.labels).
BUILTIN = [
    (
        "issue",
        "Issue",
        "ISSUE",
        ["Open", "Replied", "On hold", "Resolved", "Closed"],
        ["Resolved", "Closed"],
    ),
    (
        "lead",
        "Lead",
        "LEAD",
        ["New", "Contacted", "Qualified", "Converted", "Lost"],
        ["Converted", "Lost"],
    ),
    ("opportunity", "Opportunity", "OPP", ["Open", "Quotation", "Won", "Lost"], ["Won", "Lost"]),
    ("event", "Event", "EVENT", ["Planned", "Done", "Cancelled"], ["Done", "Cancelled"]),
    ("task", "Task", "TASK", ["Open", "Working", "Done", "Cancelled"], ["Done", "Cancelled"]),
    (
        "job_applicant",
        "Job Applicant",
        "JOB",
        ["Open", "Replied", "Hold", "Accepted", "Rejected"],
        ["Accepted", "Rejected"],
    ),
    ("communication", "Communication", "COMM", ["Open", "Closed"], ["Closed"]),
]


def create(apps, schema_editor):
    RecordType = apps.get_model("records", "RecordType")
    for key, name, prefix, statuses, closed in BUILTIN:
        RecordType.objects.get_or_create(
            key=key,
            defaults={
                "name": name,
                "prefix": prefix,
                "statuses": statuses,
                "closed_statuses": closed,
                "builtin": True,
            },
        )


def remove(apps, schema_editor):
    apps.get_model("records", "RecordType").objects.filter(builtin=True).delete()


class Migration(migrations.Migration):
    dependencies = [("records", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
