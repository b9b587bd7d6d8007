"""Helpers of the test suite alone (the development kit, ``cpe_devkit``, holds what the
benchmark and ``task dev`` share with the tests)."""
