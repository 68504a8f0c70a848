#!/bin/sh
# An emulated VM: run a Docker engine inside this container (Docker-in-Docker).
# Its API listens on the node's own address so that the harness talks to every node the same way,
# emulated or real: through the Docker API. --tls=false says so explicitly: without it, dockerd
# 20.10 sleeps 15 s at start-up to warn about an unauthenticated TCP socket.
set -eu

# One CPU budget per emulated VM: this node's containers live in cgroups *under this container's own*,
# so the CPU limit on the node container (what the harness sets, docker update --cpus) is shared by
# everything that runs on the node, as a VM's CPUs are. /run/fst-cgroup says whether that worked
# ("nested <parent>") or why not ("flat: <reason>"); the harness reads it and falls back to limits
# per service when flat.
model="flat: no cgroup hierarchy found"
parent=""
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then                       # cgroup v2
    own=$(sed -n 's/^0:://p' /proc/self/cgroup; :)
    base=/sys/fs/cgroup${own%/}
    # dockerd can only delegate controllers from a cgroup without processes: move ours to a child
    if mkdir -p "$base/init" 2>/dev/null; then
        while read -r pid; do echo "$pid" > "$base/init/cgroup.procs" 2>/dev/null || :; done < "$base/cgroup.procs"
        sed -e 's/ / +/g' -e 's/^/+/' < "$base/cgroup.controllers" > "$base/cgroup.subtree_control" 2>/dev/null || :
        if [ "$own" = "/" ]; then
            model="nested / (a private cgroup namespace: the node's containers are under its cgroup)"
        elif grep -qw cpu "$base/cgroup.subtree_control" 2>/dev/null; then
            parent="${own%/}/fst"; model="nested $parent"
        else
            model="flat: the cpu controller cannot be delegated below $own"
        fi
    else
        model="flat: $base is not writable"
    fi
else                                                                     # cgroup v1
    own=$(sed -n 's/^[0-9]*:[^:]*\bcpu\b[^:]*:\(.*\)/\1/p' /proc/self/cgroup | head -1)
    dir=$(for d in /sys/fs/cgroup/cpu /sys/fs/cgroup/cpu,cpuacct; do [ -d "$d" ] && echo "$d" && break; done; :)
    if [ -n "$own" ] && [ "$own" != "/" ] && [ -n "$dir" ] && [ -d "$dir$own" ] && mkdir -p "$dir$own/fst" 2>/dev/null; then
        parent="${own%/}/fst"; model="nested $parent"
    else
        model="flat: this container's cpu cgroup (${own:-none}) is not visible or not writable"
    fi
fi
echo "$model" > /run/fst-cgroup

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
    ${parent:+--cgroup-parent=$parent} \
    "$@"
