"""rexec: remote command execution over a small, strict, length-prefixed protocol."""

__version__ = "0.1.0"
