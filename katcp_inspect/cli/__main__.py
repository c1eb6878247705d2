"""``python -m katcp_inspect.cli``: the same as the ``katcp-inspect`` command."""

from . import main

if __name__ == "__main__":
    raise SystemExit(main())
