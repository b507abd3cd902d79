"""A config's validation errors as one line a person can act on: every problem at once, each named by
its dotted setting, and a misspelt key with the setting it was probably meant to be."""

from __future__ import annotations

import difflib
from typing import Any, get_args

from pydantic import BaseModel, ValidationError


def format_validation_error(err: ValidationError, origin: str, root: type[BaseModel]) -> str:
    """Every problem pydantic found, in one line (``config a.yaml: 2 problems: x; y``): a person fixes
    them all at once instead of one per run."""
    problems: list[str] = []
    for e in err.errors():
        parts = [p for p in e["loc"] if p not in ("function-after",)]
        loc = ".".join(str(p) for p in parts)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "not a known setting" + did_you_mean(parts, root)
        text = f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg
        if text not in problems:
            problems.append(text)
    if len(problems) == 1:
        return f"config {origin}: {problems[0]}"
    return f"config {origin}: {len(problems)} problems: " + "; ".join(problems)


def did_you_mean(loc: list[Any], root: type[BaseModel]) -> str:
    """`` (did you mean 'streams'?)`` for a misspelt key, from the settings known where it stands
    (``loc`` from the ``root`` settings model)."""
    def model_in(annotation: Any) -> Any:
        """The settings model an annotation holds (``OrdersStream | None`` holds ``OrdersStream``)."""
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
        return next((m for m in map(model_in, get_args(annotation)) if m is not None), None)

    model: Any = root
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        model = model_in(field.annotation) if field is not None else None
        if model is None:
            return ""
    known = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
