"""`python -m nirbridge ...` runs the `nirbridge` command line."""

from nirbridge.connector.cli import main

main()
