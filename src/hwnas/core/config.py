"""The base of every config section, and one-line wording of validation errors."""

from __future__ import annotations

import difflib
import reprlib

from pydantic import BaseModel, ConfigDict, ValidationError

from hwnas.core.errors import UserError


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class KindConfig(Section):
    """A section of a family with several kinds (space, strategy, target...): ``name`` picks
    the kind; the registry validates the rest against that kind's model."""

    name: str


_SHORT = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 3, 6, 6
_SHORT.maxstring = _SHORT.maxother = 60


def format_error(err: ValidationError, prefix: str = "") -> str:
    """``config: <key.path>: <what is wrong> (got <value>)`` for the first error; where a key
    is missing, an unknown key first: a misspelt key leaves the one it meant missing, and
    "estimator.weights: Field required" hid the typo `weigths`."""
    errors = err.errors()
    e = errors[0]
    missing = [x["loc"] for x in errors if x["type"] == "missing"]
    for x in errors:  # an unknown key beside a missing one of its own section
        if x["type"] == "extra_forbidden" and any(m[:-1] == x["loc"][:-1] for m in missing):
            e = x
            break
    inner = (e.get("ctx") or {}).get("error")
    if isinstance(inner, UserError):  # a nested section's (or plugin's) error, already worded
        return str(inner)
    parts = [prefix] if prefix else []
    parts += [str(p) for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    loc = ".".join(parts)
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
        missed = [str(m[-1]) for m in missing if m[:-1] == e["loc"][:-1]]
        if near := difflib.get_close_matches(str(e["loc"][-1]), missed, n=1):
            msg += f" (did you mean {near[0]}?)"
    if e["type"] == "union_tag_invalid":
        msg = msg.replace("Input tag", "unknown name").split(" found using")[0]
    shown = e["type"] not in ("extra_forbidden", "missing") and not isinstance(e.get("input"), dict)
    where = f"{loc}: " if loc else ""
    # a YAML alias bomb expands to megabytes: the value is shown cut short, one line stays one
    got = _SHORT.repr(e.get("input"))  # bounded work even for a huge value
    got = got if len(got) <= 80 else got[:77] + "..."
    return f"config: {where}{msg}" + (f" (got {got})" if shown else "")


def user_error(err: ValidationError) -> UserError | None:
    """The one-line user error a validator raised inside ``err`` (a section's, a plugin's)."""
    inner = (err.errors()[0].get("ctx") or {}).get("error")
    return inner if isinstance(inner, UserError) else None
