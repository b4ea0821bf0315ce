"""The error a user's config value raises, the one-line check that raises it, and fedsim's warnings."""


class ConfigError(ValueError):
    """A configuration value a user set is outside what fedsim allows."""


class FedsimWarning(UserWarning):
    """A sentence fedsim wants the user to read (a setting and what it means); the ``fedsim`` command prints it as one line."""


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition`` holds; the message is one sentence."""
    if not condition:
        raise ConfigError(message)
