"""`python -m lipdub` runs the command line."""

from lipdub.cli import main

main()
