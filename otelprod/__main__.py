import sys

from otelprod.cli import main

sys.exit(main())
