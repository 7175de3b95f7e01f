"""``python -m engine`` is the ``batchyard`` command."""

from engine.cli import main

main()
