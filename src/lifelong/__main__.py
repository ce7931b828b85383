"""`python -m lifelong` runs the CLI."""

from lifelong.cli import main

main()
