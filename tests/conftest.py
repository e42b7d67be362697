"""Shared fixtures: the Qt tests' window fixtures live in qt_support (imported only when used)."""

pytest_plugins = ["qt_support"]
