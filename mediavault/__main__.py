"""``python -m mediavault``: the command line."""

from mediavault.cli import main

main()
