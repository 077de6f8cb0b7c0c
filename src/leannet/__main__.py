import sys

from leannet.cli import main

sys.exit(main())
