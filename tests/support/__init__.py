"""Helpers shared by the test suites (external servers, fixtures)."""
