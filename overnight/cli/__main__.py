"""`python -m overnight.cli`: the same as the `overnight` command."""

from overnight.cli import main

main()
