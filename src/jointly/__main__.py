"""``python -m jointly`` is the ``jointly`` command."""

from jointly.cli.main import main

if __name__ == "__main__":
    main()
