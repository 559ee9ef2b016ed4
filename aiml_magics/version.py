"""The package version, in a module of its own so the wire can name it without importing the package."""

__version__ = "0.2.0"
