"""The base of every config section, and one-line wording of validation errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from hwnas.core.errors import UserError


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class KindConfig(Section):
    """A section of a family with several kinds (space, strategy, target...): ``name`` picks
    the kind; the registry validates the rest against that kind's model."""

    name: str


def format_error(err: ValidationError, prefix: str = "") -> str:
    """``config: <key.path>: <what is wrong> (got <value>)`` for the first error."""
    e = err.errors()[0]
    inner = (e.get("ctx") or {}).get("error")
    if isinstance(inner, UserError):  # a nested section's or a plugin's error, already worded
        return str(inner)
    parts = [prefix] if prefix else []
    parts += [str(p) for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    loc = ".".join(parts)
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    if e["type"] == "union_tag_invalid":
        msg = msg.replace("Input tag", "unknown name").split(" found using")[0]
    shown = e["type"] not in ("extra_forbidden", "missing") and not isinstance(e.get("input"), dict)
    return f"config: {loc or '<root>'}: {msg}" + (f" (got {e['input']!r})" if shown else "")
