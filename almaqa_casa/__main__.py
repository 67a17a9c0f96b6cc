"""``python -m almaqa_casa``: the ``almaqa`` command line."""
import sys

from almaqa_casa.cli import main

if __name__ == "__main__":
    sys.exit(main())
