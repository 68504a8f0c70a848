"""Root conftest: load the testbed's pytest plugin (options and the ``testbed`` fixture).

The plugin lives in the package (testbed/pytest_plugin.py) so that the library is usable without
pytest; this file only switches it on for pytest runs in this project."""

pytest_plugins = ("testbed.pytest_plugin",)
