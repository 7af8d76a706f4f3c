"""``python -m fakescope.cli``: the ``fakescope`` command (as torchrun launches it)."""

import sys

from fakescope.cli import main

sys.exit(main())
