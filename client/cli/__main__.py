"""``python -m rexec_client.cli``: the ``rexec`` program."""

import sys

from . import main

sys.exit(main())
