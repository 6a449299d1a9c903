"""`python -m pipeline.cli ...`: the same as the `deid-pipeline` command."""

import sys

from pipeline.cli.main import main

sys.exit(main())
