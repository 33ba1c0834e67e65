"""``python -m gateway`` is the ``wardgate`` command."""

from gateway.cli import main

main()
