"""Experiments as files: a YAML file of the same fields as the options of ``python -m testbed run``
and ``pytest experiments/`` (docs/experiments.md, "Experiment files").

    topology: seed
    taskmanagers: [1, 2]
    placements: [single-cloud, multi-cloud]
    rates: 1000
    repetitions: 3
    links: {azure-google: {rtt_ms: [20, 200]}}
    source_properties: [{}, {receive.buffer.bytes: -1}]

The file is checked as a topology is: every problem at once, each by its field, before anything
starts. Its values become option values (what the command line would have given), so one path
checks and runs both; an option also given on the command line wins, and the manifest records it as
an override beside the resolved file. Paths in the file (the topology, scenarios, ``sql:``/``jar:``
jobs, the inventory) are relative to the file's folder.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, create_model

from ..model.topology import LINK_PARAMS, TopologyError
from ..model.topology import load as load_topology
from .options import CPU_ROLES, EXPERIMENT, TESTBED, Experiment, Opt, OptionError

# how a run is carried out and where its results go, not what it measures: the command line's only
NOT_IN_FILE = ("experiment", "dry_run", "testbed_run", "keep_testbed", "results", "resume")

Scalar = Union[str, int, float, bool]
Props = dict[str, Scalar]
# the fields whose file form is richer than the command line's text
STRUCTURED: dict[str, Any] = {
    "taskmanagers": list[int],
    "placements": list[str],
    "rates": list[float],
    "jobs": list[str],
    "scenario": list[str],
    "driver_nodes": list[str],
    "links": dict[str, dict[Literal[LINK_PARAMS], list[float]]],      # type: ignore[valid-type]
    "cpu_limits": dict[Literal[CPU_ROLES], float],                     # type: ignore[valid-type]
    "producer_properties": list[Props],
    "source_properties": list[Props],
    "sink_properties": list[Props],
    "cpu_scale": Union[float, Literal["auto"]],
    "checkpoint_interval": Union[float, Literal["auto"]],
}
LISTS = ("taskmanagers", "placements", "rates", "jobs", "scenario", "driver_nodes")


def _normalise(doc: dict) -> tuple[dict, dict[str, tuple[str, str]]]:
    """The short forms a file may use, in full: one value for a list of one (``rates: 1000``, or the
    command line's ``"1000,2000"``), one mapping of properties for one alternative, one link value;
    and the problems the types' check would word badly (keys that are not names, empty values,
    YAML's yes/no/on/off where a number belongs)."""
    out, problems = {}, {}
    for key, v in doc.items():
        dest = _DESTS.get(key) if isinstance(key, str) else None
        if not isinstance(key, str):
            problems[str(key)] = (str(key), "not a field name (YAML reads a bare on/off/yes/no as a boolean, "
                                            "a number as a number)")
            continue
        if v is None or v == [] or v == {}:
            problems[key] = (key, "empty: give a value, or leave the field out for its default")
            continue
        if isinstance(v, bool) and dest in _NUMBERS:
            problems[key] = (key, f"expected a number, got {str(v).lower()} (YAML reads yes/no/on/off as booleans)")
            continue
        if dest in LISTS and not isinstance(v, list):
            v = [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else [v]
        elif dest and dest.endswith("_properties") and isinstance(v, dict):
            v = [v]
        elif dest in _CHOICES and isinstance(v, bool):
            v = "off" if v is False else "on"       # YAML reads a bare off (or on) as a boolean
        elif dest == "links" and isinstance(v, dict):
            v = {k: {f: (x if isinstance(x, list) else [x]) for f, x in fs.items()} if isinstance(fs, dict) else fs
                 for k, fs in v.items()}
        out[key] = v
    return out, problems


class ExperimentFileError(TopologyError):
    """An experiment file that cannot be used: (field, problem) pairs, every one at once."""

    what = "experiment file"


def _options() -> list[Opt]:
    return [o for o in TESTBED + EXPERIMENT if o.dest not in NOT_IN_FILE]


def _names(o: Opt) -> list[str]:
    """The keys a file may use for an option: its dest and its long names without the dashes."""
    out = [o.dest]
    for n in o.names:
        for key in (n.lstrip("-"), n.lstrip("-").replace("-", "_")):
            if key not in out:
                out.append(key)
    return out


def _annotation(o: Opt) -> Any:
    if o.dest in STRUCTURED:
        return STRUCTURED[o.dest]
    if o.kwargs.get("action") == "store_true":
        return bool
    if "choices" in o.kwargs:
        return Literal[tuple(o.kwargs["choices"])]
    return o.kwargs.get("type") or Union[str, int, float]


def _model() -> type[BaseModel]:
    fields = {o.dest: (_annotation(o) | None, Field(None, validation_alias=AliasChoices(*_names(o)),
                                                    description=o.kwargs.get("help", "")))
              for o in _options()}
    return create_model("ExperimentFile", __config__=ConfigDict(extra="forbid", populate_by_name=True), **fields)


SCHEMA = _model()
_DESTS = {name: o.dest for o in _options() for name in _names(o)}
_CHOICES = {o.dest for o in _options() if "choices" in o.kwargs}
_NUMBERS = {o.dest for o in _options() if o.kwargs.get("type") in (int, float)} | {"cpu_scale", "checkpoint_interval"}


def _number(v: Any) -> str:
    """1000.0 -> '1000', 0.123456789 -> '0.123456789' (every digit the file gave)."""
    return (str(int(v)) if v.is_integer() else repr(v)) if isinstance(v, float) else str(v)


def _props(alt: dict) -> str:
    return ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in alt.items())


def _relative(path: str, base: Path) -> str:
    """A path written relative to the experiment file, where it names a file there."""
    p = Path(path).expanduser()
    return str((base / p).resolve()) if not p.is_absolute() and (base / p).exists() else path


def as_text(dest: str, value: Any, base: Path) -> Any:
    """A file's value as the command line gives it (argparse's text, or its typed value)."""
    if value is None or isinstance(value, bool) or dest not in STRUCTURED and not isinstance(value, (list, dict)):
        return _relative(value, base) if dest in ("topology", "inventory") and isinstance(value, str) else value
    if dest == "links":
        return ";".join(f"{link}:{field}=" + ",".join(_number(v) for v in vals)
                        for link, fields in value.items() for field, vals in fields.items())
    if dest == "cpu_limits":
        return ",".join(f"{role}={_number(c)}" for role, c in value.items())
    if dest.endswith("_properties"):
        return "|".join(_props(alt) for alt in value)
    items = value if isinstance(value, list) else [value]
    if dest == "scenario":
        items = [s if str(s).lower() == "none" else _relative(str(s), base) for s in items]
    if dest == "jobs":
        items = [_job_path(str(j), base) for j in items]
    return ",".join(_number(v) for v in items) if dest not in ("cpu_scale", "checkpoint_interval") else _number(value)


def _job_path(job: str, base: Path) -> str:
    kind, colon, rest = job.partition(":")
    if not colon or kind not in ("sql", "jar"):
        return job
    path, colon2, cls = rest.partition(":")
    return f"{kind}:{_relative(path, base)}{colon2}{cls}"


def _loc(loc: tuple) -> str:
    """('links', 'azure-google', 'rtt', '[key]') -> links.azure-google.rtt; a union's branch names go."""
    parts = [str(p) for p in loc if p != "[key]" and not (isinstance(p, str) and (
        "[" in p or p in ("float", "int", "str", "bool")))]
    return ".".join(parts)


def read(path: str | Path) -> dict[str, Any]:
    """The file's fields as option values (dest -> value), checked by their types; raises
    ExperimentFileError naming every bad or unknown field."""
    fields, problems = _read(Path(path))
    if problems:
        raise ExperimentFileError(str(path), problems)
    return fields


def _read(path: Path) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The fields that pass their types' checks, and the problems of those that do not."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ExperimentFileError(str(path), [("", f"cannot read file: {e.strerror}")]) from None
    except yaml.YAMLError as e:
        raise ExperimentFileError(str(path), [("", f"not valid YAML: {e}")]) from None
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise ExperimentFileError(str(path), [("", "expected a mapping of fields to values, e.g. rates: [1000, 2000]")])
    raw = doc
    doc, problems = _normalise(raw)
    try:
        SCHEMA.model_validate(doc)
    except ValidationError as e:
        allowed = ", ".join(o.dest for o in _options())
        for err in e.errors():
            field = str(err["loc"][0])
            if err["type"] == "extra_forbidden":
                why = (f"set on the command line, not in the file ({'--' + field.replace('_', '-')})"
                       if field.replace("-", "_") in NOT_IN_FILE else f"unknown field; fields: {allowed}")
            else:
                why = f"{err['msg']}, got {err['input']!r}"
            # one line per place; a union's branches each fail there: the first's reason
            problems.setdefault(_loc(err["loc"]) or field, (_loc(err["loc"]), why))
    for names in _names_used(raw):
        if len(names) > 1:
            problems[f"{names[0]} (twice)"] = (names[0], f"given twice, as {' and '.join(names)}")
    # the fields that passed, so that the matrix's own checks can name their problems too
    bad = {p.split(".")[0].split(" ")[0] for p in problems} | {n for names in _names_used(raw) if len(names) > 1
                                                              for n in names}
    good = SCHEMA.model_validate({k: v for k, v in doc.items() if k not in bad})
    base = path.resolve().parent
    return ({dest: as_text(dest, v, base) for dest, v in good.model_dump(exclude_none=True).items()},
            list(problems.values()))


def _names_used(doc: dict) -> list[list[str]]:
    """Per option the file sets, the names it used for it (two: the same field twice)."""
    used: dict[str, list[str]] = {}
    for key in doc:
        if isinstance(key, str) and key in _DESTS:
            used.setdefault(_DESTS[key], []).append(key)
    return list(used.values())


def given(argv: list[str]) -> set[str]:
    """The option dests ``argv`` sets explicitly (they override an experiment file's fields)."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for o in TESTBED + EXPERIMENT:
        kwargs = {k: v for k, v in o.kwargs.items() if k in ("dest", "action", "nargs", "metavar")}
        p.add_argument(*o.names, default=argparse.SUPPRESS, **kwargs)
    known, _rest = p.parse_known_args([a for a in argv if a != "--"])
    return set(vars(known))


def apply(namespace: argparse.Namespace, path: str | Path, argv: list[str]) -> dict:
    """Set the file's fields on an options namespace (argparse's or pytest's ``config.option``),
    except those ``argv`` gives; check the result as ``Experiment.from_options`` does, naming the
    file's fields. Returns the record the manifest keeps: the file, its resolved fields and the
    command line's overrides."""
    path = Path(path)
    fields, problems = _read(path)
    explicit = given(argv)
    # what the command line sets of the experiment (a field of the file, or one the file leaves out)
    overrides = {d: getattr(namespace, d, None) for d in sorted(explicit - set(NOT_IN_FILE))}
    for dest, value in fields.items():
        if dest not in explicit:
            setattr(namespace, dest, value)
    from .options import values
    try:
        experiment = Experiment.from_options(values(lambda k: getattr(namespace, k, None)))
        if getattr(namespace, "cloud", "emulated") != "real":      # (real clouds: the inventory's topology)
            experiment.cells(load_topology(namespace.topology))
    except OptionError as e:
        problems += [_field_problem(p, fields, explicit) for p in e.problems]
    except TopologyError as e:
        problems += [("topology", f"{e.source}: {p}: {m}" if p else f"{e.source}: {m}") for p, m in e.problems]
    if problems:
        raise ExperimentFileError(str(path), problems)
    text = path.read_text()
    return {"path": str(path.resolve()), "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text,
            "fields": fields, "overrides": overrides}


_FIELD = {n: o.dest for o in TESTBED + EXPERIMENT for n in o.names}


def _field_problem(problem: str, fields: dict, explicit: set[str]) -> tuple[str, str]:
    """'--rates: ...' -> ('rates', '...') in the file's words (a field the file leaves out is its
    default's); what the command line gave stays as it is, and says so."""
    head, colon, rest = problem.partition(": ")
    dests = [o.dest for o in TESTBED + EXPERIMENT if head.split("/")[0] in o.names]
    if not colon or not dests or dests[0] in explicit:
        return "", problem + (" (from the command line)" if dests else "")
    words = re.sub(r"--([a-z][a-z-]*)", lambda m: _FIELD.get(m.group(0), m.group(0))
                   if _FIELD.get(m.group(0)) not in explicit else m.group(0), rest)
    return "/".join(_FIELD.get(h, h) for h in head.split("/")), words + ("" if dests[0] in fields else " (the default)")

