"""``python -m jaxinit.theory``: the ``jaxinit theory`` command."""

import sys

from jaxinit.theory.cli import main

sys.exit(main())
