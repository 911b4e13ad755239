"""``python -m mediavault``: the command line."""

from mediavault.cli import app

app(prog_name="mediavault")
