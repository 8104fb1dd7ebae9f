"""The one error family the CLI reports as a single line with exit code 2.

Every module that rejects user input (config, data, store, arch, export, plugins) raises a
subclass, so the CLI needs no knowledge of them and imports nothing heavy to catch them.
"""


class UserError(ValueError):
    """Bad input from the user: its message is one line naming what is wrong."""


class ConfigError(UserError):
    """A configuration problem, worded as one line that names the offending key."""


class PluginError(UserError):
    """An out-of-tree plugin that cannot be loaded or registers a name already taken."""
