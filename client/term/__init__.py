"""The local terminal: raw mode, window size, and relaying local input and
output to and from a remote command."""
