"""Reports: takes a run's manifest and run record, or a scan's findings, and gives report.json
and a self-contained report.html.
"""
