"""The error a user's config value raises, and the one-line check that raises it."""


class ConfigError(ValueError):
    """A configuration value a user set is outside what fedsim allows."""


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition`` holds; the message is one sentence."""
    if not condition:
        raise ConfigError(message)
