"""The command line: one module per command, ``main`` holds the command table.

Only this package knows argparse, exit codes and which report a command writes; the layers
below take plain arguments and a report writer.
"""
