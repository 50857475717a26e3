"""Registry of platforms: `register_backend` adds one, `get_backend` looks one up with a clear error."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from kit.backends.base import PRECISIONS, Backend
from kit.errors import ConfigError

_REGISTRY: dict[str, Callable[[], Backend]] = {}


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator that registers a Backend subclass under a platform name."""

    def decorate(cls: type[Backend]) -> type[Backend]:
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return decorate


def known_platforms() -> list[str]:
    """Names of all registered platforms, present on this machine or not."""
    _load_builtin()
    return sorted(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend registered as `name`; ConfigError naming the value and the known platforms otherwise."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown platform {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


def available_platforms() -> dict[str, tuple[bool, str]]:
    """Every registered platform with (available, reason) on this machine."""
    return {name: get_backend(name).available() for name in known_platforms()}


BUILTIN_MODULES = ("kit.backends.torch_backends", "kit.backends.openvino_backend", "kit.backends.browser")


def _load_builtin() -> None:
    """Import the modules that register the built-in backends (lazily, to keep `import kit` light)."""
    for module in BUILTIN_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


__all__ = ["PRECISIONS", "Backend", "available_platforms", "get_backend", "known_platforms", "register_backend"]
