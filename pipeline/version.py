"""The package's version, in one place: the package, the command line and the File Meta
Information's Implementation Version Name read it from here."""

__version__ = "0.1.0"
