"""`python -m stream` runs the kpi-stream command line."""

from stream.cli import main

main()
