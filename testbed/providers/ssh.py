"""SSH to real hosts: commands, and the Docker API over ``ssh://`` with the inventory's key.

The docker SDK speaks to a remote engine over SSH by running ``docker system dial-stdio`` on the
host (so the login user must be allowed to use the engine: root, or a member of the ``docker``
group). Its paramiko transport reads keys only from ``~/.ssh/config``; here the adapter is given the
inventory's key file and host-key policy instead, so nothing in the user's SSH set-up is changed.

Host keys: ``accept-new`` (default) trusts a host seen for the first time and records its key in the
inventory's ``known_hosts`` file; a *changed* key is always refused. ``strict`` refuses unknown hosts.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import docker
import paramiko
from docker.transport.sshconn import SSHHTTPAdapter

from ..model.inventory import SshTarget
from ..core import compat


class SshError(RuntimeError):
    """A host that cannot be reached or logged into; the message names it."""


class _RecordNewHostKey(paramiko.MissingHostKeyPolicy):
    """OpenSSH's StrictHostKeyChecking=accept-new: trust and record a host seen for the first time."""

    _lock = threading.Lock()

    def __init__(self, known_hosts: str):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key) -> None:
        with self._lock:
            client.get_host_keys().add(hostname, key.get_name(), key)
            path = Path(self.known_hosts)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            os.chmod(path, 0o600)


def new_client(t: SshTarget) -> paramiko.SSHClient:
    """An unconnected paramiko client with the target's host keys and policy."""
    client = paramiko.SSHClient()
    if Path(t.known_hosts).is_file():
        client.get_host_keys().load(t.known_hosts)
    client.set_missing_host_key_policy(_RecordNewHostKey(t.known_hosts) if t.host_keys == "accept-new"
                                       else paramiko.RejectPolicy())
    return client


def connect_params(t: SshTarget) -> dict:
    return {"hostname": t.address, "port": t.port, "username": t.user, "key_filename": t.key,
            "look_for_keys": False, "allow_agent": False, "timeout": t.timeout,
            "banner_timeout": t.timeout, "auth_timeout": t.timeout}


def connect(t: SshTarget) -> paramiko.SSHClient:
    """A connected client, or SshError naming the host and what went wrong (never the key)."""
    client = new_client(t)
    try:
        client.connect(**connect_params(t))
    except paramiko.BadHostKeyException:
        client.close()
        raise SshError(f"{t.hostname} ({t.where}): its host key differs from the one in {t.known_hosts}; "
                       "if the VM was re-created, remove its old line from that file") from None
    except paramiko.AuthenticationException as e:
        client.close()
        raise SshError(f"{t.hostname} ({t.where}): SSH login refused for user {t.user!r} with key {t.key}: "
                       f"{e}") from None
    except paramiko.SSHException as e:
        client.close()
        msg = str(e)
        if "not found in known_hosts" in msg:
            msg = f"unknown host key (ssh.host_keys is strict; add it to {t.known_hosts})"
        raise SshError(f"{t.hostname} ({t.where}): SSH failed: {msg}") from None
    except (OSError, socket.timeout) as e:
        client.close()
        raise SshError(f"{t.hostname} ({t.where}) is unreachable over SSH: "
                       f"{e.strerror or e.__class__.__name__ if isinstance(e, OSError) else e}") from None
    return client


class Session:
    """One SSH connection to a host, for commands (``run``); thread-safe, reconnects when dropped."""

    def __init__(self, target: SshTarget):
        self.target = target
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()

    def _ssh(self) -> paramiko.SSHClient:
        with self._lock:
            tr = self._client.get_transport() if self._client else None
            if tr is None or not tr.is_active():
                self._client = connect(self.target)
            return self._client

    def channel(self):
        """A new session channel on this connection (for a long-running remote command)."""
        return self._ssh().get_transport().open_session(timeout=self.target.timeout)

    def run(self, command: str, stdin: bytes | None = None, timeout: float = 120,
            sudo: bool | None = None) -> tuple[int, str, str]:
        """Run a shell command on the host; (exit code, stdout, stderr)."""
        if self.target.sudo if sudo is None else sudo:
            command = f"sudo -n sh -c {_quote(command)}"
        chan = self.channel()
        deadline = time.monotonic() + timeout
        try:
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            # read until the server's EOF, not until the exit status: sshd may send the status
            # before the last of the output
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.eof_received or chan.closed:
                    if not chan.recv_ready() and not chan.recv_stderr_ready():
                        break
                elif time.monotonic() > deadline:
                    raise SshError(f"{self.target.hostname}: {command.split()[0]} did not finish within "
                                   f"{timeout:.0f}s")
                else:
                    time.sleep(0.01)
            return chan.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
        finally:
            chan.close()

    def check(self, command: str, what: str, **kw) -> str:
        code, out, err = self.run(command, **kw)
        if code != 0:
            raise SshError(f"{self.target.hostname}: {what} failed (exit {code}): {(err or out).strip()[-1500:]}")
        return out

    def close(self) -> None:
        with self._lock:
            if self._client:
                self._client.close()
                self._client = None


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


class _KeyedSSHAdapter(SSHHTTPAdapter):
    """The docker SDK's SSH adapter, logging in with the inventory's key and host-key policy.

    Every HTTP connection is an SSH session channel (``docker system dial-stdio``), and the SDK
    keeps a pool of connections *per request URL* (9 pools by default, up to 10 connections each).
    sshd allows 10 sessions per connection (MaxSessions), so a few different requests exhaust it
    ("Secsh channel open FAILED: Connect failed"). Three pools of one idle connection each keep a
    client well under that limit on a stock sshd."""

    def __init__(self, target: SshTarget, timeout: int):
        self._target = target
        super().__init__(target.docker_url, timeout=timeout, pool_connections=3, max_pool_size=1,
                         shell_out=False)

    def _create_paramiko_client(self, base_url):
        self.ssh_client = new_client(self._target)
        self.ssh_params = connect_params(self._target)

    def _connect(self):
        try:
            super()._connect()
        except paramiko.SSHException as e:
            raise SshError(f"{self._target.hostname} ({self._target.where}): Docker over SSH: {e}") from None
        except OSError as e:
            raise SshError(f"{self._target.hostname} ({self._target.where}) is unreachable over SSH: {e}") from None


def docker_client(t: SshTarget, timeout: int = 120) -> docker.DockerClient:
    """The host's Docker engine through the docker SDK over ssh:// (``docker system dial-stdio``)."""
    # made with a shelled-out transport that does not connect yet, then given the keyed adapter
    client = docker.DockerClient(base_url=t.docker_url, use_ssh_client=True, timeout=timeout, version="1.41")
    compat.use_adapter(client, _KeyedSSHAdapter(t, timeout), "http+docker://ssh")
    return client
