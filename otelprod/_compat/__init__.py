"""Private parts of dependencies that otelprod relies on: one module per dependency.

Each module names every private attribute it uses, says why no public way
exists, and raises a clear error naming the attribute when an upgrade removes
it; ``tests/test_compat.py`` checks them all against the installed versions.
Nothing outside this package touches a dependency's private attributes.
"""
