"""YAML for configuration files: safe, and a key given twice is an error, not the last one.

PyYAML's ``safe_load`` keeps the last of two equal keys in a mapping, so ``layers: [0]``
followed further down by ``layers: [5]`` silently runs layer 5. Errors come out as one line
naming the line and column.
"""

from __future__ import annotations

from typing import Any

import yaml

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLInputError(ValueError):
    """Not valid YAML, or a key repeated in one mapping; the message names the line."""


class _NoDuplicatesLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *base` merges; an explicit key after it overrides on purpose
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen.setdefault(key, line)
            except TypeError:
                continue  # unhashable: SafeLoader refuses it below with its own message
            if first is not None:
                raise YAMLInputError(
                    f"key {key!r} is given twice in one mapping (lines {first} and {line}); "
                    "keep one"
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses repeated keys; errors are YAMLInputError, one line."""
    try:
        return yaml.load(text, Loader=_NoDuplicatesLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YAMLInputError(f"{err.problem or err.context}{where}") from None
    except yaml.YAMLError as err:
        raise YAMLInputError(" ".join(str(err).split())) from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise YAMLInputError("nested too deeply to be a configuration") from None
