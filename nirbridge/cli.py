"""Console entry point; the commands themselves live in nirbridge.connector.cli."""

from nirbridge.connector.cli import main

__all__ = ["main"]
