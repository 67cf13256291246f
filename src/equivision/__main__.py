"""``python -m equivision`` (also what ``torchrun -m equivision`` runs)."""

import sys

from equivision.cli import main

if __name__ == "__main__":
    sys.exit(main())
