"""Property-based: random parameter files and random JSON imports give a spec, a clean import, or one clear error;
never a traceback, and a rejected import leaves no database behind."""

from __future__ import annotations

import json
import math

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.cli import main
from kit.config import SPEC_FIELDS, SweepSpec, load_parameters, spec_from_parameters
from kit.errors import ConfigError

SCALARS = (st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["bert", "cpu", "fp32", "inference", "tiny", "matmul"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                             max_size=3), max_leaves=6)
KEYS = st.sampled_from([*SPEC_FIELDS, "db_path", "unknown_key"])
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_parameter_files_give_a_spec_or_one_config_error(tmp_path, params):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(params))
    try:
        loaded = load_parameters(path)
        loaded.pop("db_path", None)
        spec = spec_from_parameters(loaded)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message.strip() and "Traceback" not in message
    else:
        assert isinstance(spec, SweepSpec) and spec.jobs()
        assert all(math.isfinite(v) for v in (spec.time_budget_s, spec.timeout_s, spec.target_rel_ci))


@FAST
@given(st.binary(max_size=64))
def test_random_bytes_as_a_parameter_file_are_one_config_error(tmp_path, data):
    path = tmp_path / "p.yaml"
    path.write_bytes(data)
    try:
        loaded = load_parameters(path)
        spec_from_parameters({k: v for k, v in loaded.items() if k != "db_path"})
    except ConfigError as exc:
        assert "\n" not in str(exc).strip()


RECORD_KEYS = st.sampled_from(["run_id", "model", "platform", "precision", "batch_size", "mode", "status",
                               "samples_s", "config_key", "size", "family", "device", "extra", "seq_len"])


@FAST
@given(st.one_of(VALUES, st.lists(st.dictionaries(RECORD_KEYS, VALUES, max_size=8), max_size=3),
                 st.dictionaries(RECORD_KEYS, VALUES, max_size=8)))
def test_random_json_imports_are_stored_whole_or_refused_in_one_line(tmp_path, capsys, document):
    source, db = tmp_path / "r.json", tmp_path / "imported.duckdb"
    db.unlink(missing_ok=True)
    source.write_text(json.dumps(document))
    code = main(["import-json", str(source), "--db", str(db)])
    err = capsys.readouterr().err
    assert code in (0, 2)
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and not db.exists()
