"""``python -m pynet …``: the same command line as the ``pynet`` script."""
import sys

from .cli import main

sys.exit(main())
