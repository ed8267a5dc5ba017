"""Errors the CLI turns into one clear line on stderr and a non-zero exit."""


class RTDerainError(Exception):
    """A user-facing error: bad input, bad option, unusable file. Message is one line."""


class MediaError(RTDerainError):
    """A media file could not be opened, decoded or written."""


class ConfigError(RTDerainError):
    """A configuration file or override is invalid."""
