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


def read_arch_json(spec: str) -> Any:
    """JSON from ``spec`` or, for ``@path``, from that file."""
    text = spec
    if spec.startswith("@"):
        path = Path(spec[1:])
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise InvalidArch(f"--arch: file not found: {path}") from None
        except IsADirectoryError:
            raise InvalidArch(f"--arch: {path} is a directory, not a JSON file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArch(f"--arch: cannot read {path} ({type(exc).__name__})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArch(f"--arch: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise InvalidArch("--arch: nested too deeply to be an arch") from None


def parse_arch(spec: str, space: Space) -> Arch:
    """The arch ``spec`` names, validated as a member of ``space``."""
    if is_reference(spec):
        if space.name != "fastcnn":
            raise InvalidArch(
                f"--arch {spec}: a reference net of the fastcnn space, but this study's space "
                f"is {space.name}"
            )
        arch = json.loads(json.dumps(REFERENCE_NETS[spec]))
        try:
            space.validate(arch)
        except InvalidArch as exc:
            raise InvalidArch(
                f"--arch {spec} is not in this study's fastcnn space ({exc})"
            ) from None
    else:
        arch = read_arch_json(spec)
    space.validate(arch)
    return dict(arch)
