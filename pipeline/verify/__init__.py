"""The verifier: takes the bytes of one output (and of its original) and gives `Finding`s.

It reads the recipes and the standard itself and imports nothing of the scrubber, so that a bug
in one is not hidden by the same bug in the other (import contracts in pyproject.toml).
"""
