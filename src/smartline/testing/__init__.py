"""Public helpers for users' and driver authors' tests (never imported by runtime code)."""
