import sys

from tradebus.cli import main

sys.exit(main())
