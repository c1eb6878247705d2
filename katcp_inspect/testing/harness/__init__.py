"""Long-run harnesses shared by the test suite and ``scripts/``: a flood, a soak, a fuzz of the
read path, a comparison of a client's model with a device's, and the scripted peers they drive.

They live in the package (not under ``tests/``) so that tooling never imports the test tree.
Modules here may import the library and the rest of :mod:`katcp_inspect.testing`; nothing in
the library imports them.
"""
