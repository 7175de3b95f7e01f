"""``python -m engine.child``: the child program of one batch run."""

import sys

from engine.child.process import main

sys.exit(main())
