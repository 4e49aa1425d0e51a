"""The accounts every shared test server knows (importable without loading the fixtures)."""

ALICE = "alice@example.test"
ALICE_PASSWORD = "secret-alice"
LOCAL_DOMAIN = "example.test"
