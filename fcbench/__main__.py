"""`python -m fcbench` is the `fcbench` command."""

from .cli import main

main()
