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


def yaml_problem(exc: Exception) -> str:
    """PyYAML's report of a parse error in one line (``line 2: expected ...``): its own
    message spans several, with the offending line quoted and a caret under it."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def gist(exc: BaseException, limit: int = 160) -> str:
    """A library's exception in one short line, for a one-line error that quotes it: the
    first line that says something (PyTorch's and protobuf's messages run to several, with
    advice meant for their own users), cut at ``limit`` characters."""
    if "Weights only load failed" in str(exc) or type(exc).__name__ == "UnpicklingError":
        return "not a PyTorch checkpoint"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
