"""Reviewer key files (the format and its checks live in :mod:`streams.keyfile`, where the
workers, which load the log key, can import them too)."""

from streams.keyfile import (
    KEY_FILE_TYPE,
    KEY_FILE_VERSION,
    KeyFileError,
    create_key_file,
    load_key_file,
)

__all__ = ["KEY_FILE_TYPE", "KEY_FILE_VERSION", "KeyFileError", "create_key_file", "load_key_file"]
