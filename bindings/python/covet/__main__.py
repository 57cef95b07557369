"""python -m covet run module:app ..."""
import sys

from .cli import main

sys.exit(main())
