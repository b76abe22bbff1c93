"""``python -m bp_xp``: the ``bp-xp`` command (see :mod:`bp_xp.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
