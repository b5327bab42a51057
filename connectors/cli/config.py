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

    Passwords in URLs and secret settings are shown as ***.

    \b
    Example:
      ringtally config show
      RINGTALLY_PARTITIONS=4 ringtally config show --json
    """
    settings = get_settings()
    values = settings.redacted()
    sources = type(settings).sources()
    rows = {
        name: {
            "variable": f"RINGTALLY_{name.upper()}",
            "value": values[name],
            "source": sources[name],
        }
        for name in type(settings).model_fields
    }
    if as_json:
        echo_json(rows)
        return
    print_table(
        None,
        ("variable", "value", "source"),
        (
            (r["variable"], "" if r["value"] is None else r["value"], r["source"])
            for r in rows.values()
        ),
    )


@config.command("docs")
def config_docs() -> None:
    """Print the settings reference (docs/configuration.md) as Markdown.

    \b
    Example:
      ringtally config docs > docs/configuration.md
    """
    from streams.settings import settings_markdown

    click.echo(settings_markdown(), nl=False)
