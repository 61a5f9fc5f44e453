"""The package version, in a module of its own so that the modules which stamp it into what they save import it
downward, not from the package they belong to."""

__version__ = "0.1.0"
