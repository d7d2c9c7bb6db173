import sys

from hivemind.cli.main import main

sys.exit(main())
