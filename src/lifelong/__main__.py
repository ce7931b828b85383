"""`python -m lifelong` runs the CLI."""

from lifelong.cli import entry_point

entry_point()
