"""Experiment configuration: TOML files, typed ``--set key=value`` overrides, a TOML writer.

An experiment's default TOML file is its schema: every key it may take and that key's type.
A config file given with ``--config`` is laid over the defaults, then the ``--set``
overrides; every unknown key, wrong type or malformed value is collected and reported in
a single ``ConfigError`` before any compute starts.

Example:
  >>> schema = {"seed": 0, "sweep": {"replicates": 100, "scales": [0.5, 1.0]}}
  >>> cfg = apply_overrides(schema, ["sweep.replicates=500", "sweep.scales=[1, 2]"])
  >>> cfg["sweep"]
  {'replicates': 500, 'scales': [1.0, 2.0]}
  >>> apply_overrides(schema, ["sweep.replicate=5"])
  Traceback (most recent call last):
  ...
  jaxkl.study.config.ConfigError: invalid configuration:
    sweep.replicate: unknown key (did you mean sweep.replicates?)
"""

from __future__ import annotations

import argparse
import copy
import difflib
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ConfigError",
    "apply_overrides",
    "dumps_toml",
    "experiment_parser",
    "flatten",
    "load_toml",
    "merge_config",
    "parse_experiment_args",
    "require_config",
    "require_min",
    "require_nonempty",
    "require_one_of",
    "require_subset",
    "resolve_config",
]

_SCALARS = (bool, int, float, str)


class ConfigError(ValueError):
    """An invalid experiment configuration; ``problems`` lists ``(key, message)`` pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = list(problems)
        lines = "\n".join(f"  {key}: {msg}" for key, msg in self.problems)
        super().__init__(f"invalid configuration:\n{lines}")


def require_config(cond: bool, key: str, message: str) -> None:
    """Raise ``ConfigError`` naming ``key`` unless ``cond`` holds (per-experiment checks).

    Example:
      >>> require_config(3 > 0, "sweep.replicates", "must be > 0")
    """
    if not cond:
        raise ConfigError([(key, message)])


def _lookup(cfg: Mapping[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def require_min(cfg: Mapping[str, Any], minimum: float, *keys: str, strict: bool = False):
    """Each dotted key's number must be ≥ ``minimum`` (> with ``strict``), else ConfigError.

    Example:
      >>> require_min({"fit": {"steps": 3}}, 1, "fit.steps")
    """
    problems = []
    for key in keys:
        value = _lookup(cfg, key)
        if not (value > minimum if strict else value >= minimum):
            problems.append((key, f"must be {'>' if strict else '>='} {minimum}; got {value!r}"))
    if problems:
        raise ConfigError(problems)


def require_nonempty(cfg: Mapping[str, Any], *keys: str) -> None:
    """Each dotted key's list must have an entry, else ConfigError.

    Example:
      >>> require_nonempty({"sizes": [1, 2]}, "sizes")
    """
    problems = [(key, "must not be empty; got []") for key in keys if not _lookup(cfg, key)]
    if problems:
        raise ConfigError(problems)


def require_one_of(cfg: Mapping[str, Any], key: str, options: Sequence[Any]) -> None:
    """The dotted key's value must be one of ``options``, else ConfigError.

    Example:
      >>> require_one_of({"fit": {"gradient": "stl"}}, "fit.gradient", ("reparam", "stl"))
    """
    value = _lookup(cfg, key)
    if value not in options:
        raise ConfigError([(key, f"must be one of {tuple(options)}; got {value!r}")])


def require_subset(cfg: Mapping[str, Any], key: str, options: Sequence[Any]) -> None:
    """The dotted key's list must be non-empty and drawn from ``options``, else ConfigError.

    Example:
      >>> require_subset({"estimators": ["k1", "k3"]}, "estimators", ("k1", "k2", "k3"))
    """
    value = _lookup(cfg, key)
    unknown = [v for v in value if v not in options]
    if unknown or not value:
        problem = f"unknown {unknown}; " if unknown else ""
        message = f"must be a non-empty subset of {tuple(options)}; {problem}got {value!r}"
        raise ConfigError([(key, message)])


def _non_finite(cfg: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for every float leaf, or float in a (nested) list, that is NaN or ±inf."""

    def bad(v: Any) -> bool:
        if isinstance(v, list):
            return any(bad(x) for x in v)
        return isinstance(v, float) and not math.isfinite(v)

    return [(k, f"must be finite; got {v!r}") for k, v in flatten(cfg).items() if bad(v)]


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing file or a syntax error becomes a ``ConfigError``."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError([(str(path), "config file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([(str(path), "is a directory; give a TOML file")]) from None
    except UnicodeDecodeError as err:
        problem = f"not UTF-8 text: {err.reason} at byte {err.start}"
        raise ConfigError([(str(path), problem)]) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([(str(path), f"not valid TOML: {err}")]) from None


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables → ``{"a.b.c": value}``; lists are leaves."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# --------------------------------------------------------------------------- typing rules


def _type_name(v: Any) -> str:
    if isinstance(v, Mapping):
        return "table"
    if isinstance(v, list):
        return "list"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(v), type(v).__name__)


def _list_kind(template: list) -> str | None:
    """The element type of a schema list: 'bool', 'int', 'float', 'str', 'list', or None.

    None (an empty list, or mixed types) leaves the elements unchecked. A list that mixes
    ints and floats is a list of floats (``[0, 0.5]`` obviously means floats).
    """
    kinds = {_type_name(x) for x in template}
    if not kinds:
        return None
    if kinds <= {"int", "float"}:
        return "float" if "float" in kinds else "int"
    return kinds.pop() if len(kinds) == 1 else None


def _coerce(template: Any, value: Any) -> Any:
    """``value`` converted to the type of ``template``; raises ``TypeError`` with a reason."""
    want = _type_name(template)
    got = _type_name(value)
    if want == "float" and got == "int":
        return float(value)
    if want == "list" and got == "list":
        kind = _list_kind(template)
        if kind is None:
            return list(value)
        # Nested lists (matrices): every row is checked against all the schema's rows.
        rows = [y for t in template for y in t] if kind == "list" else None
        out = []
        for i, x in enumerate(value):
            xk = _type_name(x)
            if kind == "list" and xk == "list":
                try:
                    out.append(_coerce(rows, x))
                except TypeError as err:
                    raise TypeError(f"element {i}: {err}") from None
            elif kind == "float" and xk == "int":
                out.append(float(x))
            elif xk == kind:
                out.append(x)
            else:
                raise TypeError(f"expected a list of {kind}, element {i} is {xk} {x!r}")
        return out
    if want != got:
        raise TypeError(f"expected {want}, got {got} {value!r}")
    return value


def merge_config(schema: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Lay the tables of ``given`` over ``schema``; every key must exist with the right type.

    Args:
      schema: the default configuration (its keys and types are the schema).
      given: a partial or complete configuration, e.g. a quick variant's TOML.

    Returns:
      A new nested dict; ints are promoted to floats where the schema has a float.

    Raises:
      ConfigError: listing every unknown key and every wrong type.
    """
    problems: list[tuple[str, str]] = []
    merged = copy.deepcopy(dict(schema))

    def walk(target: dict, src: Mapping, prefix: str) -> None:
        for k, v in src.items():
            key = f"{prefix}{k}"
            if k not in target:
                problems.append((key, _unknown(key, schema)))
            elif isinstance(target[k], Mapping):
                if isinstance(v, Mapping):
                    walk(target[k], v, key + ".")
                else:
                    problems.append((key, f"expected a table, got {_type_name(v)} {v!r}"))
            elif isinstance(v, Mapping):
                problems.append((key, f"expected {_type_name(target[k])}, got a table"))
            else:
                try:
                    target[k] = _coerce(target[k], v)
                except TypeError as err:
                    problems.append((key, str(err)))

    walk(merged, given, "")
    if problems:
        raise ConfigError(problems)
    return merged


def _unknown(key: str, schema: Mapping[str, Any]) -> str:
    known = list(flatten(schema)) + _table_keys(schema)
    close = difflib.get_close_matches(key, known, n=1)
    return "unknown key" + (f" (did you mean {close[0]}?)" if close else "")


def _table_keys(cfg: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in cfg.items():
        if isinstance(v, Mapping):
            out.append(f"{prefix}{k}")
            out.extend(_table_keys(v, f"{prefix}{k}."))
    return out


# --------------------------------------------------------------------------- --set parsing


def _parse_toml_value(text: str) -> Any:
    return tomllib.loads(f"v = {text}")["v"]


def _parse_value(template: Any, text: str) -> Any:
    """Parse the text of a ``--set`` value by the schema type; ``ValueError`` if it cannot."""
    want = _type_name(template)
    stripped = text.strip()
    if want == "str":
        # Bare text is the string itself; quoted text is a TOML string (for escapes).
        if stripped[:1] in ('"', "'"):
            return _coerce(template, _parse_toml_value(stripped))
        return text
    if want == "bool":
        low = stripped.lower()
        if low in ("true", "false"):
            return low == "true"
        raise ValueError(f"expected bool (true or false), got {text!r}")
    if want == "int":
        # TOML integer syntax (1_000, 0x10 also work); 5.0 is deliberately not an int.
        try:
            value = _parse_toml_value(stripped)
        except tomllib.TOMLDecodeError:
            value = None
        if type(value) is not int:
            raise ValueError(f"expected int, got {text!r}")
        return value
    if want == "float":
        # Python's float() is more forgiving than TOML (.5, 1e-3, inf, nan).
        try:
            return float(stripped.replace("_", ""))
        except ValueError:
            raise ValueError(f"expected float, got {text!r}") from None
    if want == "list":
        try:
            value = _parse_toml_value(stripped)
        except tomllib.TOMLDecodeError:
            raise ValueError(f"expected a TOML list such as [1, 2, 3], got {text!r}") from None
        try:
            return _coerce(template, value)
        except TypeError as err:
            raise ValueError(str(err)) from None
    raise ValueError(f"cannot override a value of type {want} from the command line")


def apply_overrides(schema: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings with dotted keys to a copy of ``schema``.

    Each value is parsed by the type the key has in ``schema``: ``int``, ``float`` (an int
    literal is accepted), ``bool`` (``true``/``false``), ``str`` (bare or TOML-quoted) and
    lists in TOML syntax (``[1, 2, 3]``; elements checked against the schema list's type).
    A later override of the same key wins.

    Args:
      schema: the configuration to override (not modified).
      overrides: strings ``"a.b=value"``.

    Returns:
      A new nested dict.

    Raises:
      ConfigError: listing every malformed string, unknown key and unparsable value.

    Example:
      >>> apply_overrides({"cases": {"close": {"mu": 0.0}}}, ["cases.close.mu=0.5"])
      {'cases': {'close': {'mu': 0.5}}}
    """
    problems: list[tuple[str, str]] = []
    cfg = copy.deepcopy(dict(schema))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append((item, "expected key=value"))
            continue
        parts = key.split(".")
        node: Any = cfg
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                problems.append((key, _unknown(key, schema)))
                break
            if i < len(parts) - 1:
                node = node[part]
                continue
            if isinstance(node[part], dict):
                first = next(iter(flatten(node[part])), None)
                hint = f"; set its keys, e.g. {key}.{first.split('.')[0]}" if first else ""
                problems.append((key, f"is a table{hint}"))
                break
            try:
                node[part] = _parse_value(node[part], text)
            except ValueError as err:
                problems.append((key, str(err)))
    if problems:
        raise ConfigError(problems)
    return cfg


def resolve_config(
    config_path: str | Path,
    overrides: Iterable[str] = (),
    *,
    schema_path: str | Path | None = None,
) -> dict[str, Any]:
    """Load a TOML config, lay it over the schema's defaults, apply ``--set`` overrides.

    Args:
      config_path: the TOML file given by ``--config``.
      overrides: ``key=value`` strings from ``--set``.
      schema_path: the experiment's default TOML (its keys and types are the schema). If
        None, ``config_path`` is its own schema.

    Returns:
      The resolved configuration, a nested dict of scalars, strings and lists.

    Raises:
      ConfigError: for a missing or malformed file, unknown keys, wrong types and
        non-finite numbers (NaN or ±inf: no experiment takes one, and each would fail or
        silently poison a result only once computing had started).
    """
    given = load_toml(config_path)
    if schema_path is not None and Path(schema_path).resolve() != Path(config_path).resolve():
        given = merge_config(load_toml(schema_path), given)
    else:
        # Still normalise types (a mixed [0, 0.5] list becomes floats).
        given = merge_config(given, given)
    cfg = apply_overrides(given, overrides)
    problems = _non_finite(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


# --------------------------------------------------------------------------- TOML writer

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k: str) -> str:
    if not isinstance(k, str):
        raise TypeError(f"TOML keys must be strings, got {k!r}")
    return k if _BARE_KEY.match(k) else _toml_str(k)


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(v: Any, where: str) -> str:
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        # repr round-trips exactly and is valid TOML ('1e-05', '0.5', '1e+16').
        r = repr(f)
        return r if any(c in r for c in ".en") else r + ".0"
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x, f"{where}[{i}]") for i, x in enumerate(v)) + "]"
    raise TypeError(f"{where}: cannot write {type(v).__name__} {v!r} as TOML")


def dumps_toml(cfg: Mapping[str, Any]) -> str:
    """Write a nested dict of scalars, strings and lists as TOML (``tomllib`` reads it back).

    Tables become ``[a.b]`` sections; floats are written with ``repr`` so they round-trip
    exactly. Lists of tables and ``None`` have no place here and raise ``TypeError``.

    Example:
      >>> print(dumps_toml({"seed": 0, "sweep": {"scales": [0.5, 1.0], "name": "a b"}}), end="")
      seed = 0
      <BLANKLINE>
      [sweep]
      scales = [0.5, 1.0]
      name = "a b"
    """
    lines: list[str] = []

    def table(node: Mapping[str, Any], path: list[str]) -> None:
        scalars = [(k, v) for k, v in node.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in node.items() if isinstance(v, Mapping)]
        # A table with only subtables needs no header of its own.
        if path and (scalars or not tables):
            if lines:
                lines.append("")
            lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
        for k, v in scalars:
            where = ".".join([*path, str(k)])
            lines.append(f"{_toml_key(k)} = {_toml_value(v, where)}")
        for k, v in tables:
            table(v, [*path, k])

    table(cfg, [])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line


def experiment_parser(
    experiment: str,
    *,
    default_config: str | Path,
    description: str | None = None,
    example: str | None = None,
) -> argparse.ArgumentParser:
    """The standard command line of every experiment script.

    Options: ``--config PATH`` (default ``default_config``), ``--set KEY=VALUE``
    (repeatable, dotted keys), ``--out DIR`` (results root, default ``results``) and
    ``--run-name NAME`` (default: derived from the config, so a re-run resumes). ``--help``
    shows ``description`` as written, then every key of the default config with its value
    and, given ``example`` (a ``KEY=VALUE`` the experiment accepts), a command that uses it.
    """
    parser = argparse.ArgumentParser(
        prog=f"{experiment}.py",
        description=description,
        epilog=_config_help(experiment, default_config, example),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(default_config),
        help="TOML config laid over the defaults (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one config value, e.g. --set {example or 'sweep.replicates=500'} "
        "(repeatable; the keys are listed below)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="results root (default: %(default)s)"
    )
    parser.add_argument(
        "--run-name",
        default=None,
        help="results folder name (default: config stem + hash of the resolved config)",
    )
    parser.set_defaults(schema_path=Path(default_config))
    return parser


def _config_help(experiment: str, default_config: str | Path, example: str | None) -> str:
    """The epilog of ``--help``: the default config's keys and values, and an example."""
    try:
        defaults = flatten(load_toml(default_config))
    except ConfigError as err:  # reported properly when the config is resolved
        return f"config keys: unavailable ({err.problems[0][1]})"
    shown_path = Path(default_config)
    if shown_path.is_absolute() and shown_path.is_relative_to(Path.cwd()):
        shown_path = shown_path.relative_to(Path.cwd())
    lines = [f"config keys (defaults from {shown_path}; change any with --set KEY=VALUE):"]
    for key, value in defaults.items():
        try:
            shown = _toml_value(value, key)
        except TypeError:
            shown = repr(value)
        lines.append(f"  {key} = {shown}")
    if example is not None:
        lines += ["", "example:", f"  python experiments/{experiment}.py --set {example}"]
    return "\n".join(lines)


def parse_experiment_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    *,
    validate: Callable[[dict[str, Any]], None] | None = None,
    before_config: Callable[[argparse.Namespace], Any] | None = None,
) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse the command line and resolve the config; any ``ConfigError`` exits with status 2.

    Args:
      parser: from ``experiment_parser``.
      argv: arguments (default: ``sys.argv[1:]``).
      validate: the experiment's own checks (``require_config``), run before any compute.
      before_config: called with the parsed arguments before the config is read; the
        place for ``jaxkl.study.distributed.initialize``, which must precede any JAX
        computation (validation may build distributions).

    Returns:
      ``(args, config)``.
    """
    args = parser.parse_args(argv)
    if before_config is not None:
        before_config(args)
    cfg = None
    try:
        cfg = resolve_config(args.config, args.overrides, schema_path=args.schema_path)
        if validate is not None:
            validate(cfg)
    except ConfigError as err:
        parser.error(str(_with_values(err, cfg)))
    return args, cfg


def _with_values(err: ConfigError, cfg: Mapping[str, Any] | None) -> ConfigError:
    """``err`` with each problem showing the key's value, where the message does not.

    Per-experiment checks (:func:`require_config`) state the rule; a batch of 10⁴ runs
    is easier to fix when the refused value is on the same line.
    """
    if cfg is None:
        return err
    flat = flatten(cfg)
    problems = [
        (key, msg if "got " in msg or key not in flat else f"{msg}; got {flat[key]!r}")
        for key, msg in err.problems
    ]
    return ConfigError(problems)
