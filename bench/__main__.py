"""`python -m bench` (from the repository root): the benchmark matrix. See bench/README.md."""
import sys

from bench.runner import main

sys.exit(main())
