"""``ringtally keys``: reviewer key files (new, show)."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import HexBytes, err, one_line_errors

__all__ = ["keys"]


@click.group("keys")
def keys() -> None:
    """Reviewer key files: a secret signing key per file, mode 0600.

    \b
    Example:
      ringtally keys new alice.key
      ringtally keys show alice.key
    """


@keys.command("new")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--seed-hex",
    type=HexBytes(32, "HEX"),
    default=None,
    metavar="HEX",
    help="Derive the key from this 32-byte seed (64 hex digits) instead of the OS "
    "random generator: for demos and tests; the seed is then as secret as the key.",
)
@click.option("--force", is_flag=True, help="Replace an existing file (the old key is lost).")
@one_line_errors
def keys_new(path: Path, seed_hex: bytes | None, force: bool) -> None:
    """Create a key file (mode 0600) and print its public key.

    The file holds the SECRET key: anyone who can read it can vote as this
    reviewer. Register the printed public key in a ring with 'rings add'.
    Refuses to overwrite an existing file unless --force.

    \b
    Example:
      ringtally keys new alice.key
      PUB=$(ringtally keys new bob.key) && ringtally rings add r1 --genre g --epoch 1 --key $PUB
    """
    import ringcrypto
    from connectors.sdk.keyfile import create_key_file

    key = ringcrypto.SecretKey.from_seed(seed_hex) if seed_hex is not None else None
    public_key = create_key_file(path, key, overwrite=force)
    del key
    err(f"wrote {path} (mode 0600); it is a SECRET key: keep it private")
    click.echo(public_key.hex())


@keys.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@one_line_errors
def keys_show(path: Path) -> None:
    """Check a key file (mode, format, key pair) and print its public key.

    \b
    Example:
      ringtally keys show alice.key
    """
    from connectors.sdk.keyfile import load_key_file

    click.echo(load_key_file(path).public_key.hex())
