"""``python -m katcp_inspect.testing [--host H] [--port P] [--sensors N] [--rate HZ]
[--protocol 5.1|5.0|4]``: run a simulated KATCP device until interrupted."""

from .runner import main

if __name__ == "__main__":
    raise SystemExit(main())
