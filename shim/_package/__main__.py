"""`python -m sshkeep`: the same as the `sshkeep` command."""

import sys

from sshkeep.shim.cli.main import main

sys.exit(main())
