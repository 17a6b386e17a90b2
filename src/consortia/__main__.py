"""``python -m consortia`` runs the CLI."""

from consortia.cli import main

main()
