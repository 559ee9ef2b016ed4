"""What ``--schema``, ``--tools`` and ``--image`` name in the notebook, looked up and checked
before anything is sent (each refusal is one paragraph naming the flag)."""

from __future__ import annotations

from typing import Any

from ..errors import ParameterError


def named_schema(name: str | None, namespace: dict[str, Any]) -> Any:
    """``--schema NAME``: the dict or pydantic class of that name in the notebook."""
    if name is None:
        return None
    from ..schema import is_model_class

    value = namespace.get(name)
    if not (isinstance(value, dict) or is_model_class(value)):
        what = "is not defined" if value is None else f"is a {type(value).__name__}"
        raise ParameterError(
            f"--schema {name}: {name} {what}; it must be a JSON-schema dict or a pydantic "
            "model class defined in the notebook."
        )
    return value


def named_tools(names: str | None, namespace: dict[str, Any]) -> list[Any] | None:
    """``--tools f,g``: functions of the notebook's namespace, refused before sending when a
    name is unknown or not a function."""
    if names is None:
        return None
    found = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        if name not in namespace:
            raise ParameterError(f"--tools: there is no {name!r} in the notebook: define the "
                                 "function first, then name it here.")
        value = namespace[name]
        if not callable(value) or isinstance(value, type):
            raise ParameterError(f"--tools: {name!r} is a {type(value).__name__}, not a "
                                 "function: only functions can be tools.")
        found.append(value)
    if not found:
        raise ParameterError("--tools needs function names, separated by commas.")
    return found


def image_flags(exprs: list[str], namespace: dict[str, Any], last_image: Any, max_edge: int,
                max_bytes: int) -> list[Any]:
    """The parts of ``--image`` flags: each EXPR resolved, checked and encoded (nothing sent);
    an empty one is the last image the notebook displayed."""
    from ..images import image_part, resolve

    parts = []
    for expr in exprs:
        if not expr:
            value, what = last_image.value(), "--image (the last image shown)"
        else:
            value, what = resolve(expr, namespace), f"--image {expr}"
        parts.append(image_part(value, max_edge=max_edge, max_bytes=max_bytes, name=what))
    return parts
