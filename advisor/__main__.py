"""`python -m advisor` runs the mlarch CLI."""
from advisor.cli import main

main()
