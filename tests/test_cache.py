"""An empty cache can be refilled: every artefact the images are made of is fetched from the
registries (PyPI, Debian's mirror) into an empty ``FST_CACHE``, and each recipe's build context is
prepared from what came down. A pin that no longer resolves for the images' platform fails here, in
the fast lane, and not on a new user's first run (a warm cache hides it)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from testbed import images as img
from testbed.images import build


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FST_CACHE", str(cache))
    assert build.cache_dir() == cache and not any((cache / "pypi").glob("*"))
    return cache


def test_image_platforms_admit_every_manylinux_the_images_glibc_runs():
    tags = build.image_platforms("x86_64")
    # apache-flink's wheel is manylinux2014 (= 2.17) only; confluent-kafka's is manylinux_2_28
    for tag in ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64",
                "manylinux_2_17_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "manylinux_2_5_x86_64"):
        assert tag in tags
    assert "manylinux_2_37_x86_64" not in tags        # newer than bookworm's glibc 2.36
    assert all(t.endswith("_x86_64") for t in tags)


def test_an_empty_cache_is_refilled_from_the_registries(empty_cache, tmp_path):
    rootfs = sorted({r.base for r in img.ALL_RECIPES}, key=lambda r: r.name)
    errors: list[BaseException] = []
    debs: dict[str, Path] = {}

    def fetch(r):
        try:
            debs[r.name] = build.download_debs(r)
        except BaseException as e:  # noqa: BLE001 - asserted below
            errors.append(e)

    threads = [threading.Thread(target=fetch, args=(r,)) for r in rootfs]
    for t in threads:
        t.start()
    pins = tuple(dict.fromkeys(p for r in img.ALL_RECIPES for p in r.pypi))
    downloads = build.pip_download(pins)
    for t in threads:
        t.join()
    assert not errors, errors

    # every pin came down, as the artefact each recipe's prepare() unpacks
    for recipe in img.ALL_RECIPES:
        if recipe.prepare:
            ctx = tmp_path / f"ctx-{recipe.name}"
            ctx.mkdir()
            recipe.prepare(ctx, downloads)
            assert any(ctx.iterdir()), f"{recipe.name}: prepare() made nothing"
    assert (tmp_path / "ctx-broker" / "tansu").stat().st_size > 1_000_000
    assert (tmp_path / "ctx-flink" / "flink" / "lib" / "kafka-clients-3.9.1.jar").is_file()
    assert (tmp_path / "ctx-flink" / "flink" / "bin" / "flink").is_file()
    assert list((tmp_path / "ctx-driver" / "site").glob("confluent_kafka/cimpl*.so"))

    # every package a rootfs names was downloaded from the mirror
    for r in rootfs:
        have = {p.name.split("_", 1)[0] for p in debs[r.name].glob("*.deb")}
        missing = [p for p in r.packages if p not in have]
        assert not missing, f"{r.name} rootfs: no .deb for {missing} in {debs[r.name]}"
