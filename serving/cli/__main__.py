"""``python -m serving.cli``: the same command as the ``concord`` script."""

from serving.cli.app import app

app()
