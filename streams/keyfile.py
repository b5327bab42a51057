"""Key files (reviewers, the registrar, the log): one ringcrypto secret key per file, JSON, 0600.

A key file is a SECRET: whoever can read it can vote as that reviewer (the
ring signature hides *which* member signed, so a stolen key is undetectable).
Keep it mode 0600, on the reviewer's own machine, and never commit, mail or
log it. The format (version 1)::

    {
      "version": 1,
      "type": "ringtally-reviewer-key",
      "public_key": "<64 hex: the ristretto255 public key, safe to share>",
      "secret_key": "<64 hex: SecretKey.export_secret(), the secret>",
      "warning": "SECRET ..."
    }

Creating never overwrites by accident: the file is opened with
``O_CREAT | O_EXCL`` and mode 0600 (and ``fchmod`` 0600, whatever the umask);
``overwrite=True`` writes a fresh 0600 file beside the old one and renames it
over, so a replaced file is never briefly group-readable.

Loading refuses a file that group or others may read (``mode & 0o077``), that
is not a regular file, is oversized, is not the JSON above, or whose public
key does not match its secret. Every refusal is a :class:`KeyFileError` whose
one-line message names the file, the problem and the fix.

Secret bytes in Python: they live only inside :func:`load_key_file` /
:func:`create_key_file` (file text -> hex str -> bytes -> ``SecretKey``), and
every reference is dropped before the function returns; after that the secret
exists only inside the Rust ``SecretKey``. Python cannot zero immutable
``str``/``bytes``, so the freed memory may keep a copy until it is reused;
that is the honest limit of what a Python process can promise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

from streams.errors import UsageProblem

__all__ = [
    "KEY_FILE_TYPE",
    "KEY_FILE_VERSION",
    "KeyFileError",
    "create_key_file",
    "load_key_file",
    "load_service_key",
]

_log = logging.getLogger(__name__)

KEY_FILE_VERSION = 1
KEY_FILE_TYPE = "ringtally-reviewer-key"
_MAX_BYTES = 64 * 1024
_HEX32 = re.compile(r"^[0-9a-f]{64}$")
_WARNING = (
    "SECRET: this file holds a reviewer's signing key. Keep it mode 0600 and never share, "
    "commit or log it: anyone who can read it can vote as this reviewer, undetectably."
)


class KeyFileError(UsageProblem):
    """A key file cannot be created or used; the message names the file and the fix (exit 2)."""

    def __init__(
        self, path: str | os.PathLike[str], problem: str, *, fix: str | None = None
    ) -> None:
        super().__init__(f"key file {os.fspath(path)}: {problem}", fix=fix)
        self.path = Path(path)


def create_key_file(
    path: str | os.PathLike[str], key: Any = None, *, overwrite: bool = False
) -> bytes:
    """Write ``key`` (a ``ringcrypto.SecretKey``; a fresh one if None) to ``path``, mode 0600.

    Returns the public key. Refuses an existing file unless ``overwrite``.
    """
    import ringcrypto

    path = Path(path)
    if key is None:
        key = ringcrypto.SecretKey.generate()
    public_key: bytes = key.public_key
    document = {
        "version": KEY_FILE_VERSION,
        "type": KEY_FILE_TYPE,
        "public_key": public_key.hex(),
        "secret_key": key.export_secret().hex(),
        "warning": _WARNING,
    }
    data = (json.dumps(document, indent=2) + "\n").encode("ascii")
    del document  # the secret's hex now lives only in ``data``
    if not path.parent.is_dir():
        raise KeyFileError(path, f"directory {path.parent} does not exist", fix="create it first")
    target = path
    if overwrite:
        target = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        del data
        raise KeyFileError(
            path,
            "already exists; refusing to overwrite a key",
            fix="choose another path, or replace it with 'ringtally keys new --force' (the old "
            "key is lost)",
        ) from None
    except OSError as exc:
        del data
        raise KeyFileError(path, f"cannot create: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # a permissive umask cannot widen it; a strict one is kept
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise KeyFileError(path, f"cannot write: {exc.strerror}") from None
    finally:
        del data
    os.close(fd)
    if overwrite:
        os.replace(target, path)
    return public_key


def load_key_file(path: str | os.PathLike[str]) -> Any:
    """The ``ringcrypto.SecretKey`` in ``path``; :class:`KeyFileError` if unsafe or malformed."""

    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(
            path, "does not exist", fix="create one with 'ringtally keys new PATH'"
        ) from None
    except OSError as exc:
        raise KeyFileError(path, f"cannot open: {exc.strerror}") from None
    try:
        info = os.fstat(fd)  # of the file actually opened, not of whatever the name points at later
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(path, "is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                path,
                f"is readable or writable by group/others (mode {mode:04o}); "
                "a key file is a secret",
                fix=f"run 'chmod 600 {path}' (and consider the key compromised if others "
                "could read it)",
            )
        if info.st_size > _MAX_BYTES:
            raise KeyFileError(path, f"is {info.st_size} bytes, too large for a key file")
        raw = os.read(fd, _MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        return _parse(path, raw)
    finally:
        del raw


def _parse(path: Path, raw: bytes) -> Any:
    import ringcrypto

    fix = "restore it from a backup or create a new key with 'ringtally keys new'"
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyFileError(
            path, f"is not valid JSON ({type(exc).__name__}: {exc})", fix=fix
        ) from None
    try:
        if not isinstance(document, dict):
            raise KeyFileError(path, "is not a JSON object", fix=fix)
        if document.get("version") != KEY_FILE_VERSION:
            raise KeyFileError(
                path,
                f"has version {document.get('version')!r}, this ringtally reads version "
                f"{KEY_FILE_VERSION}",
                fix=fix,
            )
        if document.get("type", KEY_FILE_TYPE) != KEY_FILE_TYPE:
            raise KeyFileError(
                path, f"has type {document.get('type')!r}, not {KEY_FILE_TYPE!r}", fix=fix
            )
        public_hex, secret_hex = document.get("public_key"), document.get("secret_key")
        for name, value in (("public_key", public_hex), ("secret_key", secret_hex)):
            if not isinstance(value, str) or not _HEX32.match(value):
                raise KeyFileError(
                    path, f"{name} is missing or not 64 lowercase hex digits", fix=fix
                )
        secret = bytes.fromhex(secret_hex)  # type: ignore[arg-type]
        try:
            key = ringcrypto.SecretKey.from_bytes(secret)
        except ringcrypto.MalformedInput as exc:
            raise KeyFileError(path, f"secret_key is not a valid key ({exc})", fix=fix) from None
        finally:
            del secret
        if key.public_key.hex() != public_hex:
            raise KeyFileError(
                path, "public_key does not match the secret key (edited or corrupted)", fix=fix
            )
        return key
    finally:
        document = None  # drop the parsed secret hex with the rest


def load_service_key(path: Path, *, configured: bool, what: str) -> Any:
    """A service's key (the registrar's, the log's) from ``path``, created there on first
    use unless ``configured`` (an explicitly configured file that is missing is an error).

    Also (re)writes the public key beside it (``<name>.pub``, 64 hex), which
    verifiers with no configured key trust. Raises :class:`KeyFileError` (one
    line) for a missing configured file, a group-readable or corrupt one.
    """
    if not configured and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            create_key_file(path)  # O_EXCL: of two first uses at once, one creates it
            _log.info("created the development %s key %s", what, path)
        except KeyFileError:
            if not path.exists():
                raise
    key = load_key_file(path)
    _write_public_key(path.with_suffix(".pub"), key.public_key)
    return key


def _write_public_key(path: Path, public_key: bytes) -> None:
    """``path`` := the public key's hex, atomically, unless it already says so."""
    text = public_key.hex() + "\n"
    with contextlib.suppress(OSError):
        if path.read_text(encoding="ascii") == text:
            return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="ascii")
    os.replace(temporary, path)
