"""``python -m ipunkt``: the same as the ``ipunkt`` command."""

from ipunkt.cli import main

main()
