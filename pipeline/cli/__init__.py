"""The command line: argv -> a config -> a stage's entry point -> printed counts and an exit code.

One module per command (run, verify, scan, report, score, profiles, keygen, scrub), each with a
``register(subparsers)``; `main` is ``deid-pipeline``'s entry point.
"""

from pipeline.cli.main import main

__all__ = ["main"]
