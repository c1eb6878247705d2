"""``python -m katcp_inspect``: the ``katcp-inspect`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
