"""``python -m cutq.cli``: the same as the ``cutq`` command."""

import sys

from cutq.cli import main

sys.exit(main())
