"""`nirbridge engine hash-password`: a bcrypt hash for the engine's `--users` file (registered in
`connector.cli`), as the security plugin's `tools/hash.sh` prints one for `internal_users.yml`.

    nirbridge engine hash-password                          # asks twice, input hidden
    printf '%s' "$PASSWORD" | nirbridge engine hash-password --password-stdin
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

__all__ = ["hash_password_command"]


def hash_password_command(
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from stdin (one line) instead of asking."),
    ] = False,
) -> None:
    """Print the bcrypt hash of a password, for the `hash:` of a user in `engine serve --users FILE`."""
    from nirbridge.engine.rest.security import hash_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise typer.BadParameter("the password is empty", param_hint="'--password-stdin'")
    typer.echo(hash_password(password))
