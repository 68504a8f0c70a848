"""Offline images: keyed by their inputs, not rebuilt when warm, and complete enough to run."""

from __future__ import annotations

import dataclasses
import os
import time

import docker.errors

import pytest

from testbed import images as img
from testbed.core import run as runmod
from testbed.providers.engine import host_client
from tests.conftest import messages, records


def test_keys_follow_inputs():
    flink = img.FLINK
    assert flink.key == dataclasses.replace(flink).key
    assert flink.key != dataclasses.replace(flink, dockerfile=flink.dockerfile + "# changed\n").key
    assert flink.key != dataclasses.replace(flink, pypi=("apache-flink==2.0.1",)).key
    other_base = dataclasses.replace(flink.base, packages=flink.base.packages + ("less",))
    assert flink.key != dataclasses.replace(flink, base=other_base).key
    assert flink.tag == f"fst-flink:{flink.key}"
    # the three application images share one rootfs, so a node stores its layers once
    assert {r.base for r in img.APP_RECIPES} == {img.FLINK.base}


@pytest.mark.engine
def test_warm_cache_builds_nothing():
    client = host_client()
    first = img.build_all(client, img.ALL_RECIPES)
    ids = {name: client.images.get(tag).id for name, tag in first.items()}
    with records() as said:
        again = img.build_all(client, img.ALL_RECIPES)
    assert again == first
    assert {name: client.images.get(tag).id for name, tag in again.items()} == ids
    assert said == [], f"a warm cache did work: {messages(said)}"


@pytest.mark.engine
@pytest.mark.parametrize("recipe, entrypoint, cmd, expect", [
    (img.FLINK, None, ["flink", "--version"], "Version: 2.0.2"),
    (img.FLINK, None, ["java", "-version"], 'version "17.'),
    (img.FLINK, None, ["ls", "/opt/flink/lib"], "flink-connector-kafka-4.0.1-2.0.jar"),
    (img.FLINK, None, ["ls", "/opt/flink/lib"], "kafka-clients-3.9.1.jar"),
    (img.FLINK, None, ["python3", "-m", "zipfile", "-l", "/opt/flink/runner/sql-runner.jar"], "SqlRunner.class"),
    (img.BROKER, None, ["--version"], "tansu"),
    (img.DRIVER, None, ["-c", "import kafka; print('kafka-python', kafka.__version__)"], "kafka-python 3.0.12"),
    (img.DRIVER, None, ["-c", "import confluent_kafka as c; print('confluent-kafka', c.__version__, "
                              "'librdkafka', c.libversion()[0])"], "confluent-kafka 2.16.1 librdkafka 2."),
    (img.NODE, ["dockerd"], ["--version"], "Docker version 20.10"),
])
def test_images_hold_what_the_stack_runs(recipe, entrypoint, cmd, expect):
    client = host_client()
    tag = img.build_image(client, recipe)
    out = client.containers.run(tag, cmd, entrypoint=entrypoint, remove=True, stderr=True,
                                labels=runmod.labels("probe", runmod.owner_token()))
    assert expect.lower() in out.decode().lower()


@pytest.mark.engine
def test_a_rebuild_untags_superseded_versions_but_keeps_the_previous_one(tmp_path):
    from testbed.images.build import _prune_superseded
    client = host_client()
    repo = f"fst-prunetest-{os.getpid()}"
    tags = []
    try:
        for n in range(3):                   # three versions of one recipe, oldest first
            (tmp_path / "Dockerfile").write_text(f"FROM scratch\nLABEL version={n}\n")
            client.images.build(path=str(tmp_path), tag=f"{repo}:v{n}", rm=True)
            tags.append(f"{repo}:v{n}")
            time.sleep(1.1)                  # distinct creation times
        with records() as recs:
            _prune_superseded(client, tags[-1])
        said = messages(recs)
        left = sorted(t for i in client.images.list(name=repo) for t in i.tags)
        assert left == [tags[1], tags[2]], left
        assert said == [f"removed 1 superseded image(s): {tags[0]}"]
    finally:
        for t in tags:
            try:
                client.images.remove(t)
            except docker.errors.ImageNotFound:
                pass
