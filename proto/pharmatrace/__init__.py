"""The pharmatrace API package; `python -m pharmatrace` runs the command line."""
