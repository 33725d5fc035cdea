"""`python -m syncd` entry point."""

from __future__ import annotations

from syncd.cli import main

if __name__ == "__main__":
    main()
