"""``python -m harness.worker RUN_DIR [--data-dir DIR]``."""

import sys

from harness.worker.run import main

sys.exit(main())
