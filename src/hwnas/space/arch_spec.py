"""An arch named on the command line: inline JSON, ``@file.json``, or a reference net's name.

One reader for ``hwnas train --arch`` and ``hwnas profile --arch``, so a missing file or bad
JSON is the same one-line error everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.space.base import Arch, InvalidArch
from hwnas.space.fastcnn import REFERENCE_NETS

if TYPE_CHECKING:
    from hwnas.space.base import Space


def is_reference(spec: str) -> bool:
    return spec in REFERENCE_NETS


def read_arch_json(spec: str, what: str = "--arch") -> Any:
    """JSON from ``spec`` or, for ``@path``, from that file; errors start with ``what``."""
    text = spec
    if spec.startswith("@"):
        path = Path(spec[1:])
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise InvalidArch(f"{what}: file not found: {path}") from None
        except IsADirectoryError:
            raise InvalidArch(f"{what}: {path} is a directory, not a JSON file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArch(f"{what}: cannot read {path} ({type(exc).__name__})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if not spec.startswith("@") and spec.replace("_", "").replace("-", "").isalnum():
            names = ", ".join(sorted(REFERENCE_NETS))  # a bare word: a misspelt net's name
            raise InvalidArch(
                f"{what} {spec}: no reference net of that name ({names}), nor JSON or @file"
            ) from None
        raise InvalidArch(f"{what}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise InvalidArch(f"{what}: nested too deeply to be an arch") from None


def parse_arch(spec: str, space: Space, what: str = "--arch") -> Arch:
    """The arch ``spec`` names, validated as a member of ``space``; ``what`` names where the
    spec came from in errors (an option, a config key)."""
    if is_reference(spec):
        if space.name != "fastcnn":
            raise InvalidArch(
                f"{what} {spec}: a reference net of the fastcnn space, but this study's space "
                f"is {space.name}"
            )
        arch = json.loads(json.dumps(REFERENCE_NETS[spec]))
        try:
            space.validate(arch)
        except InvalidArch as exc:
            raise InvalidArch(
                f"{what} {spec} is not in this study's fastcnn space ({exc})"
            ) from None
    else:
        arch = read_arch_json(spec, what)
    try:
        space.validate(arch)
    except InvalidArch as exc:
        if what == "--arch":
            raise
        raise InvalidArch(f"{what}: {exc}") from None
    return dict(arch)
