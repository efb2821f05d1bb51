"""The one error type of user input: a :class:`ConfigError` names the dotted key that is wrong.

The command line prints it as one line, ``splitrl: error: <key>: <what is wrong>; <what is
allowed>``, and exits with status 2 before anything is written.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config key (``section.key``), a file or a command-line option has a bad value."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class ScenarioError(ConfigError):
    """A ``scenario`` key has a bad value; ``key`` is the key inside the section."""

    def __init__(self, key: str, message: str):
        super().__init__(f"scenario.{key}", message)
        self.key = key
