"""Clean Pythons for a log export's own verify.py (the fixtures of tests/fresh_python.py)."""

from tests.fresh_python import fresh_python, python38  # noqa: F401  (fixtures)
