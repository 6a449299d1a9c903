"""scan: takes a release someone else made (no originals) and gives findings: values that look
identifying, and attributes the profile the files declare would not have kept.
"""
