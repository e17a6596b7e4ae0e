import sys

from gatys.cli import main

sys.exit(main())
