"""The `overnight` command line: `commands.py` (the commands, the only core module that composes Prefect flows),
`common.py` (what every command shares: the console, the campaign checked before anything starts), `display.py`
(the progress bar and the summary of `overnight run`)."""

from overnight.cli.commands import app, main

__all__ = ["app", "main"]
