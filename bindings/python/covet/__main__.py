"""python -m covet run module:app ..."""
import sys

from .server.cli import main

sys.exit(main())
