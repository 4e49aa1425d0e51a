"""Web UI views. They validate with the shared forms and change state only through do_* actions."""
