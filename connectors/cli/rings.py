"""``ringtally rings``: register, list and deactivate rings (the compacted rings topic)."""

from __future__ import annotations

from pathlib import Path

import click

from streams.errors import UsageProblem

from ._common import (
    EPOCH,
    IDENTIFIER,
    KAFKA_TIMEOUT,
    PUBLIC_KEY,
    echo_json,
    kafka_settings,
    one_line_errors,
    print_table,
)

__all__ = ["rings"]


@click.group("rings")
def rings() -> None:
    """Rings: the public keys of the reviewers of one genre and epoch.

    \b
    Example:
      ringtally rings add ring-poetry-7 --genre poetry --epoch 7 --keys-from reviewers/
      ringtally rings list
    """


def _gather_keys(
    keys: tuple[bytes, ...], key_files: tuple[Path, ...], keys_from: Path | None
) -> list[bytes]:
    from connectors.sdk.keyfile import load_key_file

    files = list(key_files)
    if keys_from is not None:
        found = sorted(p for p in keys_from.glob("*.key") if p.is_file())
        if not found:
            raise click.BadParameter(f"no *.key files in {keys_from}", param_hint="'--keys-from'")
        files += found
    public_keys = list(keys)
    for path in files:
        key = load_key_file(path)  # checks mode and that the public key matches the secret
        public_keys.append(key.public_key)
        del key
    if not public_keys:
        raise UsageProblem(
            "a ring needs at least one member: give --key, --key-file or --keys-from"
        )
    seen: set[bytes] = set()
    for pk in public_keys:
        if pk in seen:
            raise UsageProblem(
                f"public key {pk.hex()} is given twice; a ring's members are distinct"
            )
        seen.add(pk)
    return public_keys


@rings.command("add")
@click.argument("ring_id", type=IDENTIFIER)
@click.option(
    "--genre", required=True, type=IDENTIFIER, help="The genre whose submissions it votes on."
)
@click.option("--epoch", required=True, type=EPOCH, help="The epoch it is valid for.")
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=PUBLIC_KEY,
    metavar="PUBHEX",
    help="A member's public key (64 hex digits); repeatable.",
)
@click.option(
    "--key-file",
    "key_files",
    multiple=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A member's key file (its public key is used); repeatable.",
)
@click.option(
    "--keys-from",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    metavar="DIR",
    help="Every *.key file in DIR is a member.",
)
@click.option(
    "--inactive", is_flag=True, help="Register it inactive (votes naming it are rejected)."
)
@one_line_errors
def rings_add(
    ring_id: str,
    genre: str,
    epoch: int,
    keys: tuple[bytes, ...],
    key_files: tuple[Path, ...],
    keys_from: Path | None,
    inactive: bool,
) -> None:
    """Register (or redefine) a ring; members are validated by ringcrypto first.

    Registering an existing RING_ID replaces its definition (the topic is
    compacted by ring id).

    \b
    Example:
      ringtally rings add ring-poetry-7 --genre poetry --epoch 7 \\
          --key-file alice.key --key 5e8f...c2 --keys-from reviewers/
    """
    from connectors.sdk.admin import Admin

    public_keys = _gather_keys(keys, key_files, keys_from)
    admin = Admin(kafka_settings(), timeout=KAFKA_TIMEOUT)
    ring = admin.register_ring(
        ring_id, genre=genre, epoch=epoch, public_keys=public_keys, active=not inactive
    )
    state = "active" if ring.active else "inactive"
    click.echo(
        f"registered ring {ring.ring_id} (genre {ring.genre}, epoch {ring.epoch}, "
        f"{len(ring.public_keys)} members, {state})"
    )


@rings.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@one_line_errors
def rings_list(as_json: bool) -> None:
    """List the registered rings (read from the rings topic, up to its end).

    \b
    Example:
      ringtally rings list
      ringtally rings list --json | jq '.[].ring_id'
    """
    from connectors.sdk.producer import ensure_topics
    from connectors.sdk.reader import list_rings

    settings = kafka_settings()
    ensure_topics(settings, ["rings"], timeout=KAFKA_TIMEOUT)
    found = list_rings(settings)
    if as_json:
        echo_json([r.model_dump(mode="json") for r in found.values()])
        return
    print_table(
        f"rings on {settings.topic('rings')}",
        ["ring", "genre", "epoch", "members", "active"],
        [
            (r.ring_id, r.genre, r.epoch, len(r.public_keys), "yes" if r.active else "no")
            for r in found.values()
        ],
    )


@rings.command("deactivate")
@click.argument("ring_id", type=IDENTIFIER)
@one_line_errors
def rings_deactivate(ring_id: str) -> None:
    """Mark a ring inactive: later votes naming it are rejected (inactive_ring).

    Ballots already counted stay counted.

    \b
    Example:
      ringtally rings deactivate ring-poetry-7
    """
    from connectors.sdk.admin import Admin

    ring = Admin(kafka_settings(), timeout=KAFKA_TIMEOUT).deactivate_ring(ring_id)
    click.echo(f"ring {ring.ring_id} is now inactive")
