"""Config loading, typed --set overrides, the TOML writer and the experiment command line."""

import math
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxkl.study import (
    ConfigError,
    apply_overrides,
    dumps_toml,
    experiment_parser,
    flatten,
    load_toml,
    merge_config,
    parse_experiment_args,
    require_config,
    resolve_config,
)

SCHEMA = {
    "seed": 0,
    "name": "base",
    "verbose": False,
    "sweep": {"replicates": 100, "scales": [0.5, 1.0], "sizes": [10, 100], "tags": ["a"]},
    "cases": {"close": {"mu": 0.0, "sigma": 1.0}, "far": {"mu": 3.0, "sigma": 1.0}},
}


# --------------------------------------------------------------------------- --set


def test_overrides_parse_by_schema_type():
    cfg = apply_overrides(
        SCHEMA,
        [
            "seed=7",
            "name=run two",
            "verbose=TRUE",
            "sweep.replicates=1_000",
            "sweep.scales=[1, 2.5]",
            "sweep.sizes=[3]",
            "sweep.tags=['x', \"y\"]",
            "cases.close.mu=0.5",
            "cases.far.sigma=2",
            "cases.far.mu=-1e-3",
        ],
    )
    assert cfg["seed"] == 7 and type(cfg["seed"]) is int
    assert cfg["name"] == "run two"
    assert cfg["verbose"] is True
    assert cfg["sweep"] == {
        "replicates": 1000,
        "scales": [1.0, 2.5],
        "sizes": [3],
        "tags": ["x", "y"],
    }
    assert type(cfg["sweep"]["scales"][0]) is float
    assert cfg["cases"]["close"] == {"mu": 0.5, "sigma": 1.0}
    # An int literal for a float key is promoted, so the resolved config has one type.
    assert cfg["cases"]["far"] == {"mu": -0.001, "sigma": 2.0}
    assert type(cfg["cases"]["far"]["sigma"]) is float


def test_nested_lists_are_checked_row_by_row():
    schema = {"m": [[1.0, 0.0], [0.0, 1.0]]}
    assert apply_overrides(schema, ["m=[[2, 0], [1, 3.5], []]"])["m"] == [
        [2.0, 0.0],
        [1.0, 3.5],
        [],
    ]
    assert type(apply_overrides(schema, ["m=[[2]]"])["m"][0][0]) is float
    with pytest.raises(
        ConfigError, match=r"m: element 1: expected a list of float, element 0 is str"
    ):
        apply_overrides(schema, ["m=[[1], ['x']]"])
    with pytest.raises(ConfigError, match="m: expected a list of list, element 0 is int"):
        apply_overrides(schema, ["m=[1, 2]"])


def test_overrides_do_not_modify_schema_and_last_wins():
    before = repr(SCHEMA)
    cfg = apply_overrides(SCHEMA, ["seed=1", "seed=2", "sweep.scales=[9.0]"])
    assert cfg["seed"] == 2
    assert repr(SCHEMA) == before


def test_quoted_string_uses_toml_escapes():
    assert apply_overrides(SCHEMA, ['name="a\\tb"'])["name"] == "a\tb"
    # Bare text is taken literally, '=' inside the value included.
    assert apply_overrides(SCHEMA, ["name=x=y"])["name"] == "x=y"


def test_float_override_accepts_python_spellings():
    cfg = apply_overrides(SCHEMA, ["cases.close.mu=.5", "cases.far.mu=inf"])
    assert cfg["cases"]["close"]["mu"] == 0.5
    assert math.isinf(cfg["cases"]["far"]["mu"])


@pytest.mark.parametrize(
    ("override", "key", "reason"),
    [
        (
            "sweep.replicate=5",
            "sweep.replicate",
            r"unknown key \(did you mean sweep.replicates\?\)",
        ),
        ("nope=1", "nope", "unknown key"),
        ("seed.x=1", "seed.x", "unknown key"),
        ("seed=5.0", "seed", "expected int, got '5.0'"),
        ("seed=true", "seed", "expected int"),
        ("verbose=yes", "verbose", r"expected bool \(true or false\)"),
        ("cases.close.mu=abc", "cases.close.mu", "expected float"),
        ("sweep.sizes=[1, 2.5]", "sweep.sizes", "expected a list of int, element 1 is float"),
        ("sweep.scales=[1, 'a']", "sweep.scales", "element 1 is str"),
        ("sweep.scales=1.0", "sweep.scales", "expected list"),
        ("sweep.scales=[1,", "sweep.scales", "expected a TOML list"),
        ("cases.close=1", "cases.close", "is a table; set its keys, e.g. cases.close.mu"),
        ("noequals", "noequals", "expected key=value"),
    ],
)
def test_bad_override_names_the_key(override, key, reason):
    with pytest.raises(ConfigError, match=reason) as info:
        apply_overrides(SCHEMA, [override])
    assert info.value.problems[0][0] == key
    assert str(info.value).startswith("invalid configuration:\n  " + key)


def test_all_problems_reported_in_one_error():
    with pytest.raises(ConfigError) as info:
        apply_overrides(SCHEMA, ["seed=x", "sweep.nope=1", "name=fine"])
    assert [k for k, _ in info.value.problems] == ["seed", "sweep.nope"]
    assert isinstance(info.value, ValueError)


def test_require_config():
    require_config(True, "sweep.replicates", "must be > 0")
    with pytest.raises(ConfigError, match=r"sweep.replicates: must be > 0"):
        require_config(False, "sweep.replicates", "must be > 0")


# --------------------------------------------------------------------------- files


def test_merge_config_lays_partial_file_over_schema():
    cfg = merge_config(SCHEMA, {"sweep": {"replicates": 5, "scales": [2]}, "cases": {}})
    assert cfg["sweep"] == {"replicates": 5, "scales": [2.0], "sizes": [10, 100], "tags": ["a"]}
    assert cfg["cases"] == SCHEMA["cases"]


def test_merge_config_rejects_unknown_and_mistyped():
    given_cfg = {"sweep": {"replicats": 5, "sizes": 3}, "cases": 1, "seed": {"a": 1}}
    with pytest.raises(ConfigError) as info:
        merge_config(SCHEMA, given_cfg)
    problems = dict(info.value.problems)
    assert problems.keys() == {"sweep.replicats", "sweep.sizes", "cases", "seed"}
    assert "did you mean sweep.replicates" in problems["sweep.replicats"]
    assert problems["sweep.sizes"] == "expected list, got int 3"
    assert problems["cases"] == "expected a table, got int 1"
    assert problems["seed"] == "expected int, got a table"


def test_resolve_config_file_then_overrides(tmp_path):
    schema = tmp_path / "exp.toml"
    schema.write_text(dumps_toml(SCHEMA))
    quick = tmp_path / "exp_quick.toml"
    quick.write_text("[sweep]\nreplicates = 3\n")
    cfg = resolve_config(quick, ["seed=4"], schema_path=schema)
    assert cfg["sweep"]["replicates"] == 3
    assert cfg["seed"] == 4
    assert cfg["cases"] == SCHEMA["cases"]
    # Without a separate schema the file is its own schema.
    assert resolve_config(schema, ["seed=9"])["seed"] == 9


def test_resolve_config_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)


# --------------------------------------------------------------------------- TOML writer


def test_dumps_toml_round_trips_awkward_values():
    cfg = {
        "seed": 0,
        "big": 2**62,
        "neg": -3,
        "flag": True,
        "floats": [0.1, 1e-300, 1e16, -0.0, 5e-324, 1.7976931348623157e308],
        "specials": [math.inf, -math.inf],
        "s": 'quote " backslash \\ newline \n tab \t bell \x07 del \x7f é ‖',
        "nested": [[1, 2], ["a"], []],
        "a b": {"x.y": 1, "": 2},
        "t": {"u": {"v": {"w": 1.5}}, "after": "ok"},
        "empty": {},
    }
    text = dumps_toml(cfg)
    back = tomllib.loads(text)
    assert back == cfg
    assert math.copysign(1.0, back["floats"][3]) == -1.0
    assert math.isnan(tomllib.loads(dumps_toml({"x": math.nan}))["x"])


def test_dumps_toml_layout():
    text = dumps_toml({"seed": 1, "cases": {"close": {"mu": 0.5}, "far": {"mu": 1.0}}})
    assert text == "seed = 1\n\n[cases.close]\nmu = 0.5\n\n[cases.far]\nmu = 1.0\n"


@pytest.mark.parametrize("bad", [{"x": None}, {"x": [{"a": 1}]}, {"x": object()}])
def test_dumps_toml_rejects_unrepresentable(bad):
    with pytest.raises(TypeError, match="cannot write"):
        dumps_toml(bad)


_scalars = (
    st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.text(max_size=20)
)
_keys = st.text(min_size=1, max_size=8)
_tables = st.recursive(
    st.dictionaries(_keys, _scalars | st.lists(_scalars, max_size=4), max_size=4),
    lambda inner: st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=50, deadline=None)
@given(_tables)
def test_dumps_toml_round_trip_property(cfg):
    assert tomllib.loads(dumps_toml(cfg)) == cfg


def test_flatten():
    assert flatten({"a": 1, "b": {"c": [1], "d": {"e": "x"}}}) == {
        "a": 1,
        "b.c": [1],
        "b.d.e": "x",
    }


# --------------------------------------------------------------------------- command line


def _parser(tmp_path):
    schema = tmp_path / "exp.toml"
    schema.write_text(dumps_toml(SCHEMA))
    return experiment_parser("exp", default_config=schema), schema


def test_parser_defaults_and_overrides(tmp_path):
    parser, schema = _parser(tmp_path)
    args, cfg = parse_experiment_args(
        parser, ["--set", "seed=3", "--set", "cases.close.mu=0.25", "--run-name", "r1"]
    )
    assert args.config == schema
    assert str(args.out) == "results"
    assert args.run_name == "r1"
    assert cfg["seed"] == 3 and cfg["cases"]["close"]["mu"] == 0.25


def test_parser_config_error_exits_2_naming_key(tmp_path, capsys):
    parser, _ = _parser(tmp_path)
    with pytest.raises(SystemExit) as info:
        parse_experiment_args(parser, ["--set", "sweep.replicates=lots"])
    assert info.value.code == 2
    assert "sweep.replicates: expected int, got 'lots'" in capsys.readouterr().err


def test_parser_runs_validation_before_returning(tmp_path, capsys):
    parser, _ = _parser(tmp_path)
    calls = []

    def validate(cfg):
        calls.append(cfg["sweep"]["replicates"])
        require_config(cfg["sweep"]["replicates"] > 0, "sweep.replicates", "must be > 0")

    with pytest.raises(SystemExit):
        parse_experiment_args(parser, ["--set", "sweep.replicates=0"], validate=validate)
    assert calls == [0]
    assert "sweep.replicates: must be > 0" in capsys.readouterr().err
