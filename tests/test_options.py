"""Options are checked before anything starts, the same way by pytest and by `python -m testbed run`.
No engine: nothing here gets as far as provisioning."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "experiments" / "test_pipeline.py"
EXAMPLE = ROOT / "examples" / "inventory.yaml"


def _pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def _run(how: str, results: Path, *options: str) -> subprocess.CompletedProcess:
    """An experiment run through pytest or the CLI, with its results in ``results``."""
    if how == "pytest":
        return _pytest(str(PIPELINE), "-p", "no:xdist", "--results", str(results), *options)
    return _cli("run", "--results", str(results), *options)


@pytest.mark.parametrize("how", ["pytest", "cli"])
@pytest.mark.parametrize("options, says", [
    (["--taskmanagers", "4"], "4 taskmanagers do not fit placement 'multi-cloud': one taskmanager per node "
                              "and only 3 eligible"),
    (["--taskmanagers", "two"], "--taskmanagers: expected a comma-separated list of numbers, got 'two'"),
    (["--placement", "single-cloud:aws"], "unknown cloud 'aws'; clouds: azure, google"),
    (["--placement", "nodes:azure-swarm-worker-7"], "unknown node 'azure-swarm-worker-7'"),
    (["--rate", "0"], "--rates: must be > 0 events/s, got 0"),
    (["--rates", "1000,-10"], "--rates: must be > 0 events/s, got -10"),
    (["--window", "300", "--slide", "60"], "Give a duration of at least 76s (warm-up + slide + watermark delay)"),
    (["--window", "300", "--slide", "70", "--duration", "720"],
     "window size (300s) must be a multiple of the slide (70s)"),
    (["--window", "10", "--slide", "0.0004"], "window slide (slide_s) must be > 0 and whole milliseconds"),
    (["--repetitions", "0"], "--repetitions: must be >= 1"),
])
def test_bad_experiment_options_fail_before_anything_starts(how, options, says, tmp_path):
    r = _run(how, tmp_path, *options)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert says in out, out[-3000:]
    assert "provisioning topology" not in out
    assert not any(tmp_path.iterdir()), "nothing is written for a cell that never ran"


@pytest.mark.parametrize("how", ["pytest", "cli"])
def test_every_bad_option_is_reported_once_and_all_at_once(how, tmp_path):
    options = ["--duration", "-5", "--taskmanagers", "0,1", "--placements", "nowhere,multi-cloud",
               "--rates", "0,0", "--cpu-limits", "gpu=1", "--keys", "0"]
    r = _run(how, tmp_path, *options)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    for says in ("5 bad experiment options", "--duration: must be > 0 s, got -5",
                 "--taskmanagers: a count must be a whole number >= 1, got 0",
                 "--rates: must be > 0 events/s, got 0", "--cpu-limits: 'gpu=1' is not ROLE=CORES",
                 "--keys: must be >= 1, got 0"):
        assert out.count(says) == 1, (says, out[-3000:])
    assert not any(tmp_path.iterdir())
    # once the values are good, the matrix's own problems: an unknown placement is named once, whatever
    # the taskmanager counts
    r = _cli("run", "--results", str(tmp_path), "--taskmanagers", "1,2,3", "--placements", "nowhere,multi-cloud")
    out = r.stdout + r.stderr
    assert r.returncode == 2 and out.count("unknown placement 'nowhere'") == 1, out[-3000:]


def test_experiments_refuse_xdist_on_one_testbed(tmp_path):
    """Two cells at once on one Flink cluster would measure each other: -n 2 is refused, saying why and
    what to do, and nothing is provisioned."""
    r = _pytest(str(PIPELINE), "-n", "2", "--taskmanagers", "1,2", "--placements", "single-cloud",
                "--repetitions", "1", "--results", str(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "experiments do not run with pytest-xdist (-n 2) on one testbed" in out, out[-3000:]
    assert "--inventory a.yaml,b.yaml" in out
    assert "provisioning topology" not in out and not any(tmp_path.iterdir())


def _keyless_example(tmp_path: Path) -> Path:
    """The example inventory as a fresh machine has it: the key it names does not exist."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["ssh"]["key"] = str(tmp_path / "no-such-key")
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_example_dry_run_works_without_the_key_and_warns(tmp_path):
    inv = _keyless_example(tmp_path)
    r = _cli("up", "--cloud", "real", "--inventory", str(inv), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "no-such-key' does not exist" in r.stderr and "a real run will refuse it" in r.stderr
    assert "docker swarm init" in r.stdout and "--- down ---" in r.stdout and "docker swarm leave --force" in r.stdout
    # the same through pytest
    r = _pytest(str(PIPELINE), "-p", "no:xdist", "--cloud=real", f"--inventory={inv}", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "docker swarm join --token <worker-join-token>" in r.stdout
    # a real run still refuses it, naming the file and field
    r = _cli("up", "--cloud", "real", "--inventory", str(inv))
    assert r.returncode == 2 and f"{inv}: ssh.key: key file" in r.stderr and "does not exist" in r.stderr


def _exp(**over):
    from testbed.experiment.options import EXPERIMENT, TESTBED, Experiment
    o = {opt.dest: opt.kwargs.get("default") for opt in TESTBED + EXPERIMENT}
    o.update(over)
    return Experiment.from_options(o)


def test_cpu_scale_auto_fits_the_topology_into_this_machine_and_is_off_on_real_clouds():
    from testbed.experiment.options import auto_cpu_scale, host_cores
    from testbed.model.topology import load
    seed = load("seed")                     # five VMs of 2 CPUs
    assert auto_cpu_scale(seed, "emulated", cores=2) == 0.175     # (2 - 0.25 reserve) / 10 CPUs
    assert auto_cpu_scale(seed, "emulated", cores=64) == 1.0     # never larger than the VMs
    assert auto_cpu_scale(seed, "real", cores=2) == 0.0
    cells, _ = _exp(taskmanagers="1", placements="single-cloud", repetitions=1).cells(seed)
    assert cells[0].cpu_scale == auto_cpu_scale(seed, "emulated", host_cores())
    cells, _ = _exp(taskmanagers="1", placements="single-cloud", repetitions=1, cpu_scale="0.1",
                    cpu_limits="broker=1,driver=0", payload_bytes=100, keys=64,
                    driver_nodes="azure-swarm-manager,azure-swarm-worker-2").cells(seed)
    c = cells[0]
    assert (c.cpu_scale, c.cpu_limits, c.payload_bytes, c.keys) == (0.1, (("broker", 1.0), ("driver", 0.0)), 100, 64)
    assert c.driver_nodes == ("azure-swarm-manager", "azure-swarm-worker-2")
    assert c.params()["cpu_limits"] == "broker=1,driver=0" and c.params()["payload_bytes"] == 100


@pytest.mark.parametrize("over,named", [
    ({"cpu_scale": "lots"}, "--cpu-scale"), ({"cpu_scale": "-1"}, "--cpu-scale"),
    ({"cpu_limits": "broker"}, "'broker'"), ({"cpu_limits": "flink=1"}, "'flink=1'"),
    ({"cpu_limits": "driver=-2"}, "'driver=-2'"), ({"keys": 0}, "--keys"), ({"payload_bytes": -1}, "--payload-bytes"),
])
def test_bad_load_and_cpu_options_are_named(over, named):
    from testbed.experiment.options import OptionError
    with pytest.raises(OptionError, match=re.escape(named)):
        _exp(**over)


def test_a_cell_s_rules_name_each_bad_option_once():
    """The values every cell shares are checked by a cell's own rules (CellSpec's), before anything
    starts: each problem once, named by its option, whatever the jobs, rates and client settings."""
    from testbed.experiment.options import OptionError
    with pytest.raises(OptionError) as e:
        _exp(rates="0,-1,0,500", warmup_fraction=2.0, duration=20.0, warmup=25.0, keys=0, spare_slots=-1,
             cpu_scale="-0.5", checkpoint_interval="-1", jobs="hop-window,passthrough",
             source_properties="|group.id=mine")
    problems = e.value.problems
    assert sorted(problems) == sorted([
        "--rates: must be > 0 events/s, got 0", "--rates: must be > 0 events/s, got -1",
        "--warmup-fraction: must be in (0, 1] (the warm-up's rate as a fraction of the cell's), got 2",
        "--warmup: must be >= 0 s and shorter than duration (20s), got 25", "--keys: must be >= 1, got 0",
        "--spare-slots: must be >= 0, got -1", "--cpu-scale: must be >= 0 (0: no CPU limits), got -0.5",
        "--checkpoint-interval: must be >= 0 s (0: no checkpoints), got -1",
        "--source-properties: the harness sets group.id itself"]), problems
    assert str(e.value).startswith("9 bad experiment options:")
    # the shortest load for each job's windows (a tumbling job's slide is its size): one problem per job
    with pytest.raises(OptionError) as e:
        _exp(duration=10.0, warmup=9.0, jobs="hop-window,tumble-window")
    assert len(e.value.problems) == 2 and all(p.startswith("--duration: 10s is too short for windows of 10s ")
                                              for p in e.value.problems), e.value.problems
    # a value that could not be read is named once, and the rules that need it leave it out (the default
    # window would need a duration of 4 s)
    with pytest.raises(OptionError) as e:
        _exp(window=10.0, slide=3.0, duration=3.0, warmup=1.0, cpu_scale="lots")
    assert e.value.problems == ["--window/--slide/--watermark-delay: window size (10s) must be a multiple of the "
                                "slide (3s)", "--cpu-scale: must be auto or a number, got 'lots'"]


def test_an_unknown_driver_node_is_named_with_the_nodes_there_are():
    from testbed.experiment.options import OptionError
    from testbed.model.topology import load
    with pytest.raises(OptionError, match="--driver-nodes: no node 'azure-nowhere'.*azure-swarm-manager"):
        _exp(driver_nodes="azure-nowhere").cells(load("seed"))
