"""The private APIs of this package's dependencies, in one place: each one it uses, what for, and the
version it was checked against. ``pyproject.toml`` holds each of these dependencies below its next
major version, and ``tests/test_package.py`` checks in the fast lane that every name below is still
there, so that an upgrade that drops one fails CI rather than a user's run.

| dependency | private API | what for | where |
|---|---|---|---|
| docker | ``APIClient._url``, ``APIClient._raise_for_status`` | ``docker save`` of several images as one stream (the SDK's ``Image.save`` takes one image) | ``api_stream`` |
| docker | ``APIClient._custom_adapter``, ``_version``, ``_retrieve_server_version`` | an SSH transport keyed by the inventory, mounted after the client is made | ``use_adapter`` |
| docker | ``transport.SSHHTTPAdapter._connect``, ``_create_paramiko_client`` | overridden by that transport (``providers/ssh.py``) | |
| pytest | ``TerminalReporter._tw`` (``hasmarkup``, ``_current_line``) | progress bars drawn between pytest's own writes | ``terminal`` |
| pytest-xdist | ``LoadScopeScheduling._split_scope`` | some test modules on one worker (``tests/conftest.py``) | |
"""

from __future__ import annotations

CHECKED_WITH = {"docker": "7.2.0", "pytest": "9.2.0", "pytest-xdist": "3.8.0"}

# (module, object, attribute) of every private name above, for the test that they still exist
NAMES = (("docker.api.client", "APIClient", "_url"), ("docker.api.client", "APIClient", "_raise_for_status"),
         ("docker.api.client", "APIClient", "_retrieve_server_version"),
         ("docker.transport", "SSHHTTPAdapter", "_connect"),
         ("docker.transport", "SSHHTTPAdapter", "_create_paramiko_client"),
         ("xdist.scheduler", "LoadScopeScheduling", "_split_scope"))
# and attributes of instances: pytest's TerminalReporter._tw and TerminalWriter._current_line (the test
# makes one of each)


def api_stream(client, path: str, **params):
    """GET an engine endpoint as a stream (``client``: a ``docker.DockerClient``); raises the SDK's
    error for a failed request."""
    resp = client.api.get(client.api._url(path), params=params, stream=True)
    client.api._raise_for_status(resp)
    return resp


def use_adapter(client, adapter, prefix: str) -> None:
    """Make ``client`` send every request through ``adapter`` (mounted at ``prefix``), then ask the
    engine for its API version through it."""
    client.api._custom_adapter = adapter
    client.api.mount(prefix, adapter)
    client.api._version = client.api._retrieve_server_version()


def terminal(reporter) -> tuple[bool, callable]:
    """Whether pytest's terminal draws markup, and a function giving its current line's text."""
    tw = reporter._tw
    return tw.hasmarkup, lambda: getattr(tw, "_current_line", "")
