"""rpytest: the Python side (daemon, session child, pytest plugin) of the rpytest CLI."""

__version__ = "0.1.0"
