"""``python -m qrl.cli``: the ``qrl`` command."""

import sys

from qrl.cli import main

sys.exit(main())
