"""YAML for user files: PyYAML's safe loader, with a key written twice refused.

PyYAML keeps the last of two equal keys: a config with a second ``data:`` section (a
``batch_size`` added at the end) silently dropped the first one's dataset and searched
digits. A file a user wrote is read here, so the repeat is an error naming both lines.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode


class _StrictLoader(yaml.SafeLoader):
    """The safe loader; a mapping that names a key twice is a :class:`ConstructorError`."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be
                continue  # overridden here, as YAML means
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first is not key_node.start_mark:
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {first.line + 1}): merge the two",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load_user_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses a key written twice in one mapping."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
