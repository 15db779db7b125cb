"""`python -m mlarch` runs the same CLI as the `mlarch` command."""
from mlarch.cli import main

main()
