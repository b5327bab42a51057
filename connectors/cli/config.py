"""``ringtally config``: the settings in force, where each came from, and their reference.

``show`` is what an operator checks first when two processes disagree (a
worker started from another directory, a variable set in one shell only);
secrets are masked (:meth:`streams.settings.Settings.redacted`). ``docs``
prints docs/configuration.md, generated from the settings model.
"""

from __future__ import annotations

import click

from ._common import echo_json, get_settings, print_table

__all__ = ["config"]


@click.group("config")
def config() -> None:
    """Settings: the values in force (secrets masked) and their reference.

    \b
    Example:
      ringtally config show
      ringtally config show --json
    """


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="JSON: {setting: {variable, value, source}}.")
def config_show(as_json: bool) -> None:
    """Every setting's value in force, its variable and where it came from.

    Passwords in URLs and key=value strings and secret settings are shown as
    ***. A bad value is shown (masked) with its error, and warned about on stderr.

    \b
    Example:
      ringtally config show
      RINGTALLY_PARTITIONS=4 ringtally config show --json
    """
    import os

    from streams.settings import Settings, shown_value

    settings = get_settings()
    broken = settings.broken  # bad values: shown with their error, masked
    values = settings.redacted()
    sources = Settings.sources()
    rows = {}
    for name in Settings.model_fields:
        variable = f"RINGTALLY_{name.upper()}"
        row = {"variable": variable, "value": values.get(name), "source": sources[name]}
        if name in broken:
            row["value"] = shown_value(os.environ.get(variable, ""))
            row["error"] = broken[name]
        rows[name] = row
    if as_json:
        echo_json(rows)
        for error in broken.values():
            click.echo(f"ringtally: warning: {error}", err=True)
        return
    print_table(
        None,
        ("variable", "value", "source"),
        (
            (
                r["variable"],
                "" if r["value"] is None else r["value"],
                r["source"] + (f" - {r['error']}" if "error" in r else ""),
            )
            for r in rows.values()
        ),
    )
    for error in broken.values():  # shown, and said once more where a script sees it
        click.echo(f"ringtally: warning: {error}", err=True)


@config.command("docs")
def config_docs() -> None:
    """Print the settings reference (docs/configuration.md) as Markdown.

    \b
    Example:
      ringtally config docs > docs/configuration.md
    """
    from streams.settings import settings_markdown

    click.echo(settings_markdown(), nl=False)
