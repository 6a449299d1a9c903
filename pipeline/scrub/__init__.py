"""The header scrub: takes a dataset, the `Plan` and the `Keys`; applies the PS3.15 actions at
every depth (keyed UIDs, date shifts, pseudonyms, cleaning of text) and gives a `ScrubLog`.
"""
