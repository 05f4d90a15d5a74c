"""``python -m truyvet.cli`` is the ``truyvet`` command."""

from truyvet.cli import main

main()
