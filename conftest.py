"""Root conftest. The testbed's pytest plugin is switched on by its ``pytest11`` entry point
(pyproject.toml) wherever the package is installed; nothing needs loading here."""
