"""Offline image builds, cached by the content of their inputs.

No image registry is assumed. A *root filesystem* is made with ``debootstrap`` from Debian
packages and imported into the engine; an *image* is an ordinary ``docker build`` on top of one,
with a build context filled from files shipped in this package and from pinned PyPI artefacts.

Each recipe has a key: the SHA-256 of everything that goes into it (suite, package list,
Dockerfile text, file contents, pinned PyPI requirements, and its base's key). The key is the
image's tag, so a second run with nothing changed finds every image and builds nothing.
"""

from __future__ import annotations

import logging
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import docker
import docker.errors

from ..core import env
from ..core.progress import Progress
from ..core.run import file_lock, step
from ..core import compat

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent.parent   # recipe files are named relative to testbed/
LABEL_KEY = "io.flink-swarm-testbed.image-key"
DEBIAN_SUITE = "bookworm"
IMAGE_PYTHON = "3.11"          # bookworm's python3
IMAGE_GLIBC = (2, 36)          # bookworm's glibc: a manylinux wheel for any glibc up to it runs there
# wheels downloaded for the images' Python and this machine's architecture: apache-flink (only its
# platform-independent bin/ and conf/ are used) and confluent-kafka (librdkafka inside)
IMAGE_PYTHON_WHEELS = ("apache-flink", "confluent-kafka")


def cache_dir() -> Path:
    """Where downloads, rootfs tarballs and image bundles are kept between runs."""
    root = env.CACHE.get() or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flink-swarm-testbed")
    p = Path(root)
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_lock(name: str):
    """A machine-wide lock on one cache entry (xdist workers and parallel runs build once)."""
    d = cache_dir() / "locks"
    d.mkdir(exist_ok=True)
    return file_lock(d / f"{name}.lock")


def _sha(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class Rootfs:
    """A Debian root filesystem from ``debootstrap --variant=minbase``."""

    name: str
    packages: tuple[str, ...]
    suite: str = DEBIAN_SUITE

    @property
    def key(self) -> str:
        return _sha("rootfs", self.suite, *sorted(self.packages))[:16]

    @property
    def tag(self) -> str:
        return f"fst-rootfs-{self.name}:{self.key}"


@dataclass(frozen=True)
class Recipe:
    """An image built FROM a rootfs with a Dockerfile and a prepared context.

    ``files`` (paths inside the testbed package) are copied into the context by their base name;
    ``pypi`` are pinned requirements that
    ``prepare`` (if any) turns into context content, given the folder of downloaded artefacts."""

    name: str
    base: Rootfs
    dockerfile: str
    files: tuple[str, ...] = ()
    pypi: tuple[str, ...] = ()
    prepare: Callable[[Path, Path], None] | None = field(default=None, compare=False)
    # extra text that changes the key when prepare() changes its output
    prepare_version: str = ""

    @property
    def key(self) -> str:
        parts: list[str | bytes] = ["image", self.base.key, self.dockerfile, self.prepare_version, *self.pypi]
        for f in self.files:
            parts += [f, (PACKAGE / f).read_bytes()]
        return _sha(*parts)[:16]

    @property
    def tag(self) -> str:
        return f"fst-{self.name}:{self.key}"


def debian_mirror() -> str:
    return env.DEBIAN_MIRROR.get()


def _image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


# Trimmed from every rootfs: documentation, manuals and apt's caches are not needed at run time.
_TRIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
         "var/cache/apt/archives", "var/lib/apt/lists"]


def build_rootfs(client: docker.DockerClient, rootfs: Rootfs) -> str:
    """debootstrap + import; returns the tag. Skipped when the tag is already in the engine."""
    if _image_exists(client, rootfs.tag):
        return rootfs.tag
    with cache_lock(f"rootfs-{rootfs.name}"):
        if _image_exists(client, rootfs.tag):
            return rootfs.tag
        with tempfile.TemporaryDirectory(prefix=f"fst-rootfs-{rootfs.name}-", dir=cache_dir()) as tmp:
            target = Path(tmp) / "root"
            _debootstrap(rootfs, target)
            for rel in _TRIM:
                if (target / rel).is_dir():
                    shutil.rmtree(target / rel, ignore_errors=True)
                    (target / rel).mkdir(parents=True, exist_ok=True)
            with step(log, f"import {rootfs.tag}"):
                tar = subprocess.Popen(["tar", "-C", str(target), "--numeric-owner", "-c", "."],
                                       stdout=subprocess.PIPE)
                repo, tag = rootfs.tag.split(":")
                client.api.import_image_from_stream(tar.stdout, repository=repo, tag=tag,
                                                    changes=[f'LABEL {LABEL_KEY}="{rootfs.key}"'])
                if tar.wait() != 0:
                    raise RuntimeError(f"tar of {target} failed")
        _prune_superseded(client, rootfs.tag)
    return rootfs.tag


def debs_dir(rootfs: Rootfs) -> Path:
    """The cached .deb files of one rootfs (not shared: parallel debootstraps race on one)."""
    d = cache_dir() / "debs" / rootfs.name
    d.mkdir(parents=True, exist_ok=True)
    return d


def _debootstrap(rootfs: Rootfs, target: Path, download_only: bool = False) -> None:
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is needed to build images offline; install it "
                           "(apt-get install debootstrap) or run through scripts/with-env")
    what = "download the packages of" if download_only else "debootstrap"
    cmd = ["debootstrap", "--variant=minbase", f"--cache-dir={debs_dir(rootfs)}",
           *(["--download-only"] if download_only else []),
           "--include=" + ",".join(rootfs.packages), rootfs.suite, str(target), debian_mirror()]
    with step(log, f"{what} {rootfs.name} rootfs ({len(rootfs.packages)} packages)",
              unit="lines of output") as p:
        _run_logged(cmd, target.parent / "debootstrap.log", p)


def download_debs(rootfs: Rootfs) -> Path:
    """Fill the cache with the .deb files of one rootfs from the mirror, without building it
    (what a build from an empty cache downloads first); returns their folder."""
    with cache_lock(f"rootfs-{rootfs.name}"), \
            tempfile.TemporaryDirectory(prefix=f"fst-debs-{rootfs.name}-", dir=cache_dir()) as tmp:
        _debootstrap(rootfs, Path(tmp) / "root", download_only=True)
    return debs_dir(rootfs)


def _run_logged(cmd: list[str], logfile: Path, progress: Progress) -> None:
    """Run a long command, keep its output in a log, count its lines as progress (the last one is
    the note: what it is doing)."""
    what = progress.what
    with open(logfile, "w") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            out.write(line)
            tail = (tail + [line.rstrip()])[-20:]
            progress.advance(note=line.strip()[:70])
        if proc.wait() != 0:
            raise RuntimeError(f"{what} failed (exit {proc.returncode}); last lines:\n  "
                               + "\n  ".join(tail))


def pip_download(requirements: tuple[str, ...]) -> Path:
    """Fetch pinned PyPI artefacts (no dependencies) into the cache, once."""
    dest = cache_dir() / "pypi"
    dest.mkdir(exist_ok=True)

    def have(req: str) -> bool:
        name, _, version = req.partition("==")
        stem = name.replace("-", "_").lower()
        return any(p.name.lower().startswith(f"{stem}-{version}") for p in dest.iterdir())

    with cache_lock("pypi"):
        todo = [r for r in requirements if not have(r)]
        if not todo:
            return dest
        with step(log, f"download {len(todo)} artefact(s) from PyPI", unit="files", total=len(todo)) as files:
            for req in todo:
                _pip_download(req, dest)
                files.advance()
    return dest


def _pip_download(req: str, dest: Path) -> None:
    name = req.partition("==")[0]
    cmd = [_python(), "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(dest), req]
    if name in IMAGE_PYTHON_WHEELS:   # for the images' Python, not the harness's
        cmd += ["--only-binary=:all:", "--python-version", IMAGE_PYTHON]
        for tag in image_platforms():
            cmd += ["--platform", tag]
    with step(log, f"download {req} from PyPI"):
        r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"pip download {req} failed:\n{r.stderr[-2000:]}")


def image_platforms(machine: str | None = None) -> list[str]:
    """Every platform tag a wheel may carry to run on the images' glibc, newest first.

    pip takes an explicit ``--platform`` literally: ``manylinux_2_28`` does not admit a wheel
    tagged only ``manylinux2014`` (= ``manylinux_2_17``), as apache-flink's is. So all of them are
    named, with the legacy aliases of 2.17, 2.12 and 2.5."""
    arch = machine or _machine()
    major, newest = IMAGE_GLIBC
    tags = [f"manylinux_{major}_{minor}_{arch}" for minor in range(newest, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    for minor, alias in legacy.items():
        tags.insert(tags.index(f"manylinux_{major}_{minor}_{arch}") + 1, f"{alias}_{arch}")
    return tags


def _machine() -> str:
    import platform
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def _python() -> str:
    import sys
    return sys.executable


_BUILD_STEP = re.compile(r"Step (\d+)/(\d+) :")


def build_image(client: docker.DockerClient, recipe: Recipe) -> str:
    """Build one recipe (and its rootfs) unless an image with its key exists; returns the tag."""
    if _image_exists(client, recipe.tag):
        return recipe.tag
    base = build_rootfs(client, recipe.base)
    with cache_lock(f"image-{recipe.name}"):
        if _image_exists(client, recipe.tag):
            return recipe.tag
        downloads = pip_download(recipe.pypi) if recipe.pypi else None
        with tempfile.TemporaryDirectory(prefix=f"fst-ctx-{recipe.name}-", dir=cache_dir()) as ctx:
            ctxp = Path(ctx)
            for f in recipe.files:
                shutil.copy2(PACKAGE / f, ctxp / Path(f).name)
            if recipe.prepare:
                with step(log, f"prepare {recipe.name} build context"):
                    recipe.prepare(ctxp, downloads or cache_dir())
            (ctxp / "Dockerfile").write_text(f"FROM {base}\n{recipe.dockerfile}")
            repo, tag = recipe.tag.split(":")
            steps = sum(1 for ln in recipe.dockerfile.splitlines() if ln.strip()) + 1
            with step(log, f"docker build {recipe.tag}", unit="Dockerfile steps", total=steps) as p:
                out = []
                for chunk in client.api.build(path=ctx, tag=recipe.tag, rm=True, forcerm=True,
                                              labels={LABEL_KEY: recipe.key}, decode=True):
                    if "error" in chunk:
                        raise RuntimeError(f"building {recipe.tag} failed: {chunk['error']}\n"
                                           + "".join(out[-20:]))
                    if "stream" in chunk:
                        out.append(chunk["stream"])
                        m = _BUILD_STEP.match(chunk["stream"])
                        if m:
                            p.update(int(m[1]), total=int(m[2]))
        _prune_superseded(client, recipe.tag)
    return recipe.tag


def _prune_superseded(client: docker.DockerClient, tag: str, max_kept: int = 2) -> None:
    """Each change of a recipe's inputs builds a new tag of its repository (hundreds of MB); keep
    the newest few (as for bundles: another checkout of an older version may still use one) and
    untag the others. An image a container uses is left alone (the engine refuses)."""
    repo = tag.split(":")[0]
    others = [i for i in client.images.list(name=repo) if tag not in i.tags]
    others.sort(key=lambda i: i.attrs.get("Created", ""), reverse=True)
    removed = []
    for image in others[max_kept - 1:]:
        for t in image.tags:
            if t.startswith(repo + ":"):
                try:
                    client.images.remove(t)
                    removed.append(t)
                except docker.errors.APIError:
                    pass
    if removed:
        log.info(f"removed {len(removed)} superseded image(s): {', '.join(removed)}")


def build_all(client: docker.DockerClient, recipes: list[Recipe]) -> dict[str, str]:
    """Build recipes, rootfs steps in parallel (they are mostly downloads); returns name -> tag."""
    errors: list[BaseException] = []
    roots = {r.base for r in recipes if not _image_exists(client, r.tag)}

    def one(rootfs: Rootfs) -> None:
        try:
            build_rootfs(client, rootfs)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(r,), daemon=True) for r in roots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return {r.name: build_image(client, r) for r in recipes}


def bundle(client: docker.DockerClient, tags: list[str]) -> Path:
    """One ``docker save`` archive of several images (shared layers once), cached by image ids."""
    ids = sorted(client.images.get(t).id for t in tags)
    path = cache_dir() / "bundles" / f"{_sha(*ids, *sorted(tags))[:16]}.tar"
    if path.exists():
        return path
    path.parent.mkdir(exist_ok=True)
    with cache_lock("bundle"):
        if path.exists():
            return path
        with step(log, f"save {len(tags)} images to {path.name}", unit="bytes") as p:
            resp = compat.api_stream(client, "/images/get", names=tags)
            tmp = path.with_suffix(".part")
            with open(tmp, "wb") as f:
                for chunk in resp.iter_content(1 << 20):
                    f.write(chunk)
                    p.advance(len(chunk))
            tmp.rename(path)
        _prune_bundles(keep=path)
    return path


def _prune_bundles(keep: Path, max_kept: int = 2) -> None:
    """Old bundles are dead weight (GBs); keep the newest few."""
    old = sorted((p for p in keep.parent.glob("*.tar") if p != keep), key=lambda p: p.stat().st_mtime)
    for p in old[: max(0, len(old) - (max_kept - 1))]:
        p.unlink(missing_ok=True)


def manifest(client: docker.DockerClient, tags: dict[str, str]) -> str:
    """JSON of name -> {tag, id, size} for provenance."""
    out = {}
    for name, tag in tags.items():
        img = client.images.get(tag)
        out[name] = {"tag": tag, "id": img.id, "size": img.attrs.get("Size")}
    return json.dumps(out, indent=2, sort_keys=True)
