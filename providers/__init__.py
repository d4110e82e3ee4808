"""Video-generation providers: one module per protocol, all behind :class:`Provider`."""

from __future__ import annotations

import importlib

from providers.base import (
    ErrorKind,
    GenerationRequest,
    InputImage,
    Output,
    Provider,
    ProviderError,
    TaskStatus,
)

# The protocol ids of SPEC §4, in the order "first configured provider" is chosen.
PROVIDER_IDS: tuple[str, ...] = ("higgsfield", "higgsfield_feed", "hiapi", "foxapi", "gptge")


def provider_class(provider_id: str) -> type[Provider]:
    """The Provider subclass for a protocol id (module ``providers.<id>``, attr ``PROVIDER``)."""
    if provider_id not in PROVIDER_IDS:
        raise KeyError(provider_id)
    module = importlib.import_module(f"providers.{provider_id}")
    cls: type[Provider] = module.PROVIDER
    return cls


__all__ = [
    "PROVIDER_IDS",
    "ErrorKind",
    "GenerationRequest",
    "InputImage",
    "Output",
    "Provider",
    "ProviderError",
    "TaskStatus",
    "provider_class",
]
