import sys

from jaxcomp.cli import main

sys.exit(main())
