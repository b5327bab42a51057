"""``ringtally rings``: ring versions, registrar-signed: add, rotate, deactivate, list, show.

A ring is a sequence of immutable versions on the rings topic; ``add``,
``rotate`` and ``deactivate`` each publish the next version, signed with the
registrar key (``RINGTALLY_REGISTRAR_KEY_FILE``, default
``<data_dir>/registrar.key``, created on first use on a development machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from models.fields import MAX_VOTES_PER_EPOCH
from streams.errors import UsageProblem

from ._common import (
    EPOCH,
    IDENTIFIER,
    PUBLIC_KEY,
    echo_json,
    kafka_settings,
    one_line_errors,
    print_table,
)

__all__ = ["rings"]


@click.group("rings")
def rings() -> None:
    """Rings: versioned, registrar-signed sets of reviewer public keys (one genre, epoch).

    \b
    Example:
      ringtally rings add ring-poetry-7 --genre poetry --epoch 7 --keys-from reviewers/
      ringtally rings rotate ring-poetry-7 --remove 5e8f...c2
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


class _Instant(click.ParamType):
    """An ISO 8601 instant with a timezone (``2026-12-07T09:00:00Z``)."""

    name = "INSTANT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from datetime import datetime

        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            instant = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 instant (2026-12-07T09:00:00Z)", param, ctx)
        if instant.utcoffset() is None:
            self.fail(f"{value!r} has no timezone (add Z or +01:00)", param, ctx)
        return instant


INSTANT = _Instant()

_valid_from = click.option(
    "--valid-from",
    type=INSTANT,
    default=None,
    metavar="INSTANT",
    help="When the version takes effect (ISO 8601 with timezone; default: now). It never "
    "takes effect before its record reaches the broker.",
)


def _describe(ring: Any) -> str:
    state = "active" if ring.active else "inactive"
    return (
        f"ring {ring.ring_id} version {ring.version} (genre {ring.genre}, epoch {ring.epoch}, "
        f"{len(ring.public_keys)} members, {ring.votes_per_epoch} votes per epoch, {state}, "
        f"valid from {ring.valid_from.isoformat()})"
    )


def _read_members(path: Path) -> list[bytes]:
    """Public keys from a file: one 64-hex key per line, ``#`` comments and blank lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="'--members'") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            keys.append(PUBLIC_KEY.convert(line, None, None))
        except click.BadParameter as exc:
            raise click.BadParameter(
                f"{path}:{number}: {exc.format_message()}", param_hint="'--members'"
            ) from None
    if not keys:
        raise click.BadParameter(f"{path} lists no public key", param_hint="'--members'")
    return keys


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
    "--votes-per-epoch",
    type=click.IntRange(1, MAX_VOTES_PER_EPOCH),
    default=10,
    show_default=True,
    metavar="K",
    help="How many votes each member may cast in the epoch.",
)
@_valid_from
@one_line_errors
def rings_add(
    ring_id: str,
    genre: str,
    epoch: int,
    keys: tuple[bytes, ...],
    key_files: tuple[Path, ...],
    keys_from: Path | None,
    votes_per_epoch: int,
    valid_from: Any,
) -> None:
    """Register a ring (version 1; for an existing RING_ID its next version), signed by the
    registrar. Members are validated by ringcrypto first. Nothing is published when the
    latest version already has these members, genre, epoch and K.

    \b
    Example:
      ringtally rings add ring-poetry-7 --genre poetry --epoch 7 \\
          --key-file alice.key --key 5e8f...c2 --keys-from reviewers/
    """
    from connectors.sdk.admin import Admin

    public_keys = _gather_keys(keys, key_files, keys_from)
    settings = kafka_settings()
    admin = Admin(settings, timeout=settings.kafka_timeout)
    ring = admin.register_ring(
        ring_id,
        genre=genre,
        epoch=epoch,
        public_keys=public_keys,
        votes_per_epoch=votes_per_epoch,
        valid_from=valid_from,
    )
    click.echo(f"registered {_describe(ring)}")


@rings.command("rotate")
@click.argument("ring_id", type=IDENTIFIER)
@click.option(
    "--add",
    "added",
    multiple=True,
    type=PUBLIC_KEY,
    metavar="PUBHEX",
    help="A public key to add; repeatable.",
)
@click.option(
    "--remove",
    "removed",
    multiple=True,
    type=PUBLIC_KEY,
    metavar="PUBHEX",
    help="A member's public key to remove (revokes that reviewer); repeatable.",
)
@click.option(
    "--members",
    "members_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    metavar="FILE",
    help="The complete new member list: one 64-hex public key per line ('#' comments).",
)
@_valid_from
@one_line_errors
def rings_rotate(
    ring_id: str,
    added: tuple[bytes, ...],
    removed: tuple[bytes, ...],
    members_file: Path | None,
    valid_from: Any,
) -> None:
    """Publish the next version of a ring with changed members (same genre, epoch, K).

    Revoking a reviewer is a rotation without their key: once the new version
    is in force, a vote naming the old version is rejected ring_not_in_force,
    and the removed key cannot sign for the new one.

    \b
    Example:
      ringtally rings rotate ring-poetry-7 --remove 5e8f...c2 --add 9a01...77
      ringtally rings rotate ring-poetry-7 --members members.txt --valid-from 2026-12-08T00:00Z
    """
    from connectors.sdk.admin import Admin

    if members_file is not None and (added or removed):
        raise UsageProblem("give --members, or --add/--remove, not both")
    if members_file is None and not (added or removed):
        raise UsageProblem("nothing to change: give --add, --remove or --members")
    settings = kafka_settings()
    admin = Admin(settings, timeout=settings.kafka_timeout)
    latest = admin.ring_versions(ring_id)
    if not latest:
        from connectors.sdk.reader import get_ring

        get_ring(settings, ring_id)  # NotFound, one line
    current = [bytes.fromhex(pk) for pk in latest[-1].public_keys]
    if members_file is not None:
        members = _read_members(members_file)
    else:
        missing = [pk.hex() for pk in removed if pk not in current]
        if missing:
            raise UsageProblem(
                f"{missing[0]} is not a member of ring {ring_id} version {latest[-1].version}"
            )
        present = [pk.hex() for pk in added if pk in current]
        if present:
            raise UsageProblem(
                f"{present[0]} is already a member of ring {ring_id} version {latest[-1].version}"
            )
        members = [pk for pk in current if pk not in removed] + list(dict.fromkeys(added))
    if not members:
        raise UsageProblem("a ring needs at least one member: the rotation would remove them all")
    if sorted(members) == sorted(current):
        raise UsageProblem(
            f"the members are those of ring {ring_id} version {latest[-1].version}: nothing to do"
        )
    ring = admin.rotate_ring(ring_id, public_keys=members, valid_from=valid_from)
    click.echo(f"published {_describe(ring)}")


@rings.command("deactivate")
@click.argument("ring_id", type=IDENTIFIER)
@_valid_from
@one_line_errors
def rings_deactivate(ring_id: str, valid_from: Any) -> None:
    """Publish the next version of a ring, inactive: votes appended after it takes effect
    are rejected. Ballots already counted stay counted.

    \b
    Example:
      ringtally rings deactivate ring-poetry-7
    """
    from connectors.sdk.admin import Admin

    settings = kafka_settings()
    ring = Admin(settings, timeout=settings.kafka_timeout).deactivate_ring(
        ring_id, valid_from=valid_from
    )
    click.echo(f"published {_describe(ring)}")


@rings.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@one_line_errors
def rings_list(as_json: bool) -> None:
    """List the registered rings, the latest signed version of each (rings topic, to its end).

    \b
    Example:
      ringtally rings list
      ringtally rings list --json | jq '.[].ring_id'
    """
    from connectors.sdk.producer import ensure_topics
    from connectors.sdk.reader import list_rings

    settings = kafka_settings()
    ensure_topics(settings, ["rings"], timeout=settings.kafka_timeout)
    found = list_rings(settings)
    if as_json:
        echo_json([r.model_dump(mode="json") for r in found.values()])
        return
    print_table(
        f"rings on {settings.topic('rings')}",
        ["ring", "version", "genre", "epoch", "members", "votes/epoch", "active", "valid from"],
        [
            (
                r.ring_id,
                r.version,
                r.genre,
                r.epoch,
                len(r.public_keys),
                r.votes_per_epoch,
                "yes" if r.active else "no",
                r.valid_from.isoformat(),
            )
            for r in found.values()
        ],
    )


@rings.command("show")
@click.argument("ring_id", type=IDENTIFIER)
@click.option(
    "--version",
    type=click.IntRange(1, 2**32 - 1),
    default=None,
    metavar="N",
    help="Show version N with its members (default: every version, then the latest's members).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@one_line_errors
def rings_show(ring_id: str, version: int | None, as_json: bool) -> None:
    """Show a ring: its signed versions (when each takes effect) and its members.

    \b
    Example:
      ringtally rings show ring-poetry-7
      ringtally rings show ring-poetry-7 --version 1 --json
    """
    from connectors.sdk.producer import ensure_topics
    from connectors.sdk.reader import get_ring, ring_history

    settings = kafka_settings()
    ensure_topics(settings, ["rings"], timeout=settings.kafka_timeout)
    if version is not None:
        ring = get_ring(settings, ring_id, version)
        if as_json:
            echo_json(ring.model_dump(mode="json"))
            return
        click.echo(_describe(ring))
        for pk in ring.public_keys:
            click.echo(f"  {pk}")
        return
    versions = ring_history(settings).get(ring_id)
    if not versions:
        get_ring(settings, ring_id)  # NotFound, one line
        return
    if as_json:
        echo_json(
            [
                {**v.ring.model_dump(mode="json"), "effective_from_ms": v.effective_ms}
                for v in versions
            ]
        )
        return
    from datetime import UTC, datetime

    print_table(
        f"ring {ring_id} on {settings.topic('rings')}",
        ["version", "members", "votes/epoch", "active", "in force from"],
        [
            (
                v.ring.version,
                len(v.ring.public_keys),
                v.ring.votes_per_epoch,
                "yes" if v.ring.active else "no",
                datetime.fromtimestamp(v.effective_ms / 1000, UTC).isoformat(),
            )
            for v in versions
        ],
    )
    latest = versions[-1].ring
    click.echo(f"members of version {latest.version}:")
    for pk in latest.public_keys:
        click.echo(f"  {pk}")
