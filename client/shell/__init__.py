"""``rexec shell``: the line-mode remote shell (a REPL) and its built-ins."""
