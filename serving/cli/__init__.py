"""The ``concord`` command line, one module per command group (assembled in ``serving.cli.app``).

Commands import the product lazily, inside each command, so ``concord --help`` starts fast.
"""
