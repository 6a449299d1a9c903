"""Evaluation: the answer-key scorer of the synthetic sample archive (`deid-pipeline score`),
used by `make run` to count leaks and lost facts in a release.
"""
