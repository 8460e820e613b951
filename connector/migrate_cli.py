"""`nirbridge migrate`: undo a mapping migration's alias swap (registered in `connector.cli`).

    nirbridge migrate rollback --index ALIAS [--url URL] [--dry-run] [--json]

`nirbridge enrich` swaps an alias onto a new index when the enriched fields need one (connector.migration);
the index it moved away from is kept, and its name is recorded in the new index's mapping `_meta`.
`rollback` moves the alias back to that index in one atomic `_aliases` call; the index rolled away from is
kept too (delete it yourself once it is no longer wanted). Rolling back again follows the records further
back (`corpus-nir-2` -> `corpus-nir-1` -> `corpus-nir-0`).

Exit status: 0 rolled back (or, with `--dry-run`, would roll back), 1 refused because there is nothing to roll
back to (not an alias, no recorded swap, the previous index deleted), 2 bad usage, an unreachable cluster or
a missing alias.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .cli_common import cli_settings, connect, guarded, print_json
from .cli_options import JsonOption, UrlOption

__all__ = ["migrate_app"]

migrate_app = typer.Typer(help="Mapping migrations: roll an alias swap back.", no_args_is_help=True)


@migrate_app.command("rollback")
def rollback_command(
    index: Annotated[str, typer.Option("--index", help="The alias that `enrich` swapped.")],
    url: UrlOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the _aliases actions that would be sent; change nothing.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Point an alias back at the index a migration swapped it away from (one atomic _aliases call)."""
    from .migration import rollback

    client, resolved = connect(url, cli_settings())
    actions = guarded(lambda: rollback(client, index, dry_run=dry_run))
    moved_from = actions[0]["remove"]["index"]
    moved_to = actions[1]["add"]["index"]
    verb = "would point" if dry_run else "now points"
    typer.echo(f"{index} {verb} at {moved_to} (was {moved_from}; {moved_from} is kept)", err=json_output)
    if json_output:
        print_json(
            {"index": index, "from": moved_from, "to": moved_to, "actions": actions, "dry_run": dry_run}
        )
