"""hwnas example plugin: the ``example-board`` cost model and the ``example-convs`` space.

hwnas imports this module through the entry point in pyproject.toml (group ``hwnas.plugins``)
the first time a config names a kind the built-ins lack, or when ``hwnas config --reference``
lists every kind. Importing it registers the kinds; keep it free of torch, so that loading the
plugin to validate a config stays fast (the heavy code is imported when a kind is built).
"""

from hwnas_example_plugin import board, convs_config

__all__ = ["board", "convs_config"]
