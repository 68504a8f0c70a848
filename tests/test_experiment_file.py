"""Experiment files: checked as a topology is, before anything starts; the same cells as the command
line's; the command line overriding a field, and the manifest saying so; rerun's differences."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import cli
from testbed.experiment import file, rerun
from testbed.experiment.options import Experiment, values
from testbed.model.topology import load

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "recorded" / "20261203-131731-ff5c"
BAD = """taskmanagers: [1, x]
windw: 3
results: /tmp/elsewhere
links: {azure-google: {rtt: 20}}
duration: 10
warmup: 20
placements: [single-cloud]
"""


def _args(*argv: str):
    args = cli.parser().parse_args(["run", *argv])
    return args


def _cells(args) -> list[str]:
    cells, _ = Experiment.from_options(values(lambda k: getattr(args, k, None))).cells(load("seed"))
    return [c.key for c in cells]


def test_the_seed_s_experiment_file_is_the_command_line_s_default_run():
    args = _args()
    record = file.apply(args, ROOT / "examples" / "seed-experiment.yaml", ["run"])
    assert _cells(args) == _cells(_args()) and len(_cells(args)) == 12      # (one taskmanager spans no clouds)
    assert record["overrides"] == {} and record["sha256"] and "taskmanagers: [1, 2, 3]" in record["text"]


def test_a_file_with_bad_fields_is_refused_naming_each_before_anything_starts(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    # (no engine is asked: this machine's lane has none)
    assert cli.main(["run", str(f), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    for field in ("taskmanagers.1:", "windw: unknown field", "results: set on the command line",
                  "links.azure-google.rtt:", "warmup: must be >= 0 s and shorter than duration (10s)"):
        assert f"{f}: {field}" in err, err
    assert not (tmp_path / "results").exists()


def test_the_command_line_overrides_a_field_and_the_manifest_records_it(tmp_path):
    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "kill.yaml").write_text("- {at: 12s, action: kill, target: taskmanager@google-cloud-worker-1}\n")
    f = tmp_path / "exp.yaml"
    f.write_text("taskmanagers: 2\nplacements: multi-cloud\nrates: [500, 1000]\nduration: 40\nwarmup: 5\n"
                 "scenario: [none, faults/kill.yaml]\nsource_properties: [{}, {receive.buffer.bytes: -1}]\n"
                 "links: {azure-google: {rtt_ms: [20, 200]}}\nwan_check: off\n")
    argv = ["run", str(f), "--rates", "700"]
    args = _args(*argv[1:])
    record = file.apply(args, f, argv)
    assert record["overrides"] == {"rates": "700"} and record["fields"]["rates"] == "500,1000"
    keys = _cells(args)
    # 2 link values x 2 scenarios x 2 source settings x 1 rate (the command line's) x 3 repetitions
    assert len(keys) == 24 and all("-r700-" in k for k in keys)
    assert args.wan_check == "off"           # (YAML's bare off is a boolean: read as the choice)
    assert any("kill" in k and "source:receive.buffer.bytes=-1" in k and k.endswith("rtt_ms=200") for k in keys), keys
    # the scenario's path is the file's folder's
    assert args.scenario == f"none,{tmp_path / 'faults' / 'kill.yaml'}"


def test_pytest_refuses_a_bad_experiment_file_naming_its_fields(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    p = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "experiments"), "--experiment", str(f),
                        "--collect-only", "-q", "-p", "no:cacheprovider"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    assert p.returncode == 4, p.stdout + p.stderr       # a usage error: nothing collected, nothing started
    assert "windw: unknown field" in p.stderr and "taskmanagers.1" in p.stderr, p.stderr


def test_rerun_names_each_image_version_and_file_that_differs(tmp_path):
    doc = json.loads((RECORDED / "manifest.json").read_text())
    opts = doc["sessions"][0]["options"]
    images = dict(doc["testbed"]["images"])
    # the same images and topology (the recorded run's packages may be older than this checkout's)
    assert all(d.startswith("version of") for d in rerun.differences(doc, opts, images))
    doc["testbed"]["images"]["flink"] = "sha256:" + "0" * 64
    doc["versions"]["flink"] = "1.17.0"
    doc["topology"]["sha256"] = "f" * 64
    differ = rerun.differences(doc, opts, images)
    assert any(d.startswith("image flink: sha256:") and "the run's sha256:0000" in d for d in differ), differ
    assert any(d.startswith("version of flink: 2.") and d.endswith("the run's 1.17.0") for d in differ), differ
    assert any(d.startswith("topology seed: sha256") for d in differ), differ


def test_rerun_refuses_to_start_when_something_differs(tmp_path, capsys):
    folder = tmp_path / "old"
    folder.mkdir()
    doc = json.loads((RECORDED / "manifest.json").read_text())
    doc["topology"]["sha256"] = "f" * 64
    (folder / "manifest.json").write_text(json.dumps(doc))
    # (images: this lane has no engine, so none is built here: each is named as not built yet)
    assert cli.main(["rerun", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "topology seed: sha256" in err and "--anyway" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["old"]


def test_yaml_s_booleans_empty_values_and_a_field_given_twice_are_named(tmp_path):
    f = tmp_path / "odd.yaml"
    f.write_text("checkpoint_interval: on\nrates: []\nrate: 5\ntaskmanagers: 2\nkeys:\non: 3\ncpu_scale: 0.123456789\n")
    with pytest.raises(file.ExperimentFileError) as e:
        file.read(f)
    text = str(e.value)
    for problem in ("checkpoint_interval: expected a number, got true", "rates: empty", "keys: empty",
                    "True: not a field name", "rates: given twice, as rates and rate"):
        assert f"{f}: {problem}" in text, text
    f.write_text("cpu_scale: 0.123456789\nrates: [1234567, 1000.0]\n")
    assert file.read(f) == {"cpu_scale": "0.123456789", "rates": "1234567,1000"}     # every digit kept


def test_an_abbreviated_option_is_refused_rather_than_lost_to_the_file(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("repetitions: 3\n")
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["run", str(f), "--rep", "1"])
    args = _args(str(f), "--repetitions", "1")
    assert file.apply(args, f, ["run", str(f), "--repetitions", "1"])["overrides"] == {"repetitions": 1}
    assert args.repetitions == 1
