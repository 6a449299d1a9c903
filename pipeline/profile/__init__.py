"""The profile: PS3.15 Annex E as deid recipes, compiled into a picklable `Plan`.

Takes a profile name, options and extra recipes; gives the `Plan` every stage applies (a
`ProfileError` before any file is read when they do not make sense). The only importer of deid.
"""
