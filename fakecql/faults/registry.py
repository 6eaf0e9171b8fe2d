# Every fault by name: the class, its verb, its command-line name.
from __future__ import annotations

import re
from typing import Type

__all__ = ["cli_name"]


def cli_name(cls: Type[object]) -> str:
    """A fault class's verb in kebab case (KeyUpdate -> key-update)."""
    from . import VERBS

    for verb, fault_class in VERBS.items():
        if fault_class is cls:
            return verb.replace("_", "-")
    return re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()
