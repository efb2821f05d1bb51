"""The registry of worlds: ``scenario.world`` -> the world object (:class:`~splitrl.worlds.base.BaseWorld`).

Entries are import paths, so looking one world up imports nothing of the others.  A world is one
folder ``splitrl/worlds/<name>/`` plus one line in :data:`_WORLDS`; a world defined elsewhere
(a plug-in, a test) calls :func:`register`, or is named in the environment variable
``SPLITRL_WORLDS`` (``name=package.module:WORLD,...``) so that Ray workers find it too.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from splitrl.core.errors import ConfigError

if TYPE_CHECKING:
    from splitrl.worlds.base import BaseWorld

_WORLDS: dict[str, str] = {
    "lyappo": "splitrl.worlds.lyappo:WORLD",
    "emh": "splitrl.worlds.emh:WORLD",
    "lymdo": "splitrl.worlds.lymdo:WORLD",
    "enachi": "splitrl.worlds.enachi:WORLD",
}
#: the world of a config without ``scenario.world``
DEFAULT = "lyappo"
#: the worlds this package ships (the README documents these)
BUILTIN = tuple(_WORLDS)


def register(name: str, path: str) -> None:
    """Add a world: ``path`` is ``"package.module:attribute"`` of its world object."""
    _WORLDS[name] = path


def _from_environment() -> None:
    for item in filter(None, (s.strip() for s in os.environ.get("SPLITRL_WORLDS", "").split(","))):
        name, _, path = item.partition("=")
        _WORLDS.setdefault(name.strip(), path.strip())


def names() -> tuple[str, ...]:
    """The registered world names, in registration order."""
    _from_environment()
    return tuple(_WORLDS)


def get(name: str) -> BaseWorld:
    """The world called ``name``; an unknown name is a ``ConfigError`` on ``scenario.world``."""
    _from_environment()
    if not isinstance(name, str) or name not in _WORLDS:
        raise ConfigError("scenario.world", f"expected one of {', '.join(_WORLDS)}, got {name!r}")
    module, _, attr = _WORLDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def of(cfg: dict) -> BaseWorld:
    """The world of a (raw or resolved) config."""
    return get((cfg.get("scenario") or {}).get("world", DEFAULT))
