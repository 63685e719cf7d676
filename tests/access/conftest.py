"""Clean Pythons for the copy packages' and scoped exports' verify.py."""

from tests.fresh_python import fresh_python  # noqa: F401  (fixtures)
