#!/bin/sh
# An emulated VM: run a Docker engine inside this container (Docker-in-Docker).
# Its API listens on the node's own address so that the harness talks to every node the same way,
# emulated or real: through the Docker API. --tls=false says so explicitly: without it, dockerd
# 20.10 sleeps 15 s at start-up to warn about an unauthenticated TCP socket.
set -eu

# cgroup v2 with a private cgroup namespace (typical with --privileged on current distros):
# dockerd can only delegate controllers from a non-root cgroup, so move our processes to a child.
if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qx '0::/' /proc/self/cgroup; then
    mkdir -p /sys/fs/cgroup/init
    while read -r pid; do echo "$pid" > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :; done \
        < /sys/fs/cgroup/cgroup.procs
    sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \
        > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || :
fi

# An SSH server, like a cloud VM's, when the provider hands over authorized keys (FST_AUTHORIZED_KEYS):
# the real-cloud path (SSH, the Docker API over ssh://) can then be driven against emulated nodes.
if [ -n "${FST_AUTHORIZED_KEYS:-}" ] && [ -x /usr/sbin/sshd ]; then
    mkdir -p /root/.ssh /run/sshd
    chmod 700 /root/.ssh
    printf '%s\n' "$FST_AUTHORIZED_KEYS" > /root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
    ssh-keygen -A >/dev/null
    /usr/sbin/sshd -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no
fi

# Stale pid/socket files from a previous start of this container would stop dockerd.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid

exec dockerd \
    --host=unix:///var/run/docker.sock \
    --host=tcp://0.0.0.0:2375 --tls=false \
    --storage-driver=overlay2 \
    --log-level=warn \
    "$@"
