"""Sweep configs as files: reading a ``.toml`` (or ``.json``) config, writing one back.

:func:`load_config` reads and validates a config that will run
(:func:`jaxinit.sweep.config.parse_config`); :func:`to_toml` writes a
validated config as the TOML that reads back equal; :func:`saved_config`
reads a results folder's ``config.toml`` as the sweep wrote it, without
resolving what it names (for reading results back).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxinit.sweep.config import TOP_LEVEL, ConfigError, SweepConfig, parse_config


def load_config(path: str | Path) -> SweepConfig:
  """Reads and validates a ``.toml`` (or ``.json``) sweep file.

  Args:
    path: the file.

  Returns:
    The :class:`SweepConfig`.

  Raises:
    ConfigError: a syntax error, a bad key or value (the message names the
      file and the key), a folder or a file that is not UTF-8 text;
      FileNotFoundError.
  """
  path = Path(path)
  try:
    text = path.read_bytes().decode("utf-8")
  except FileNotFoundError:
    raise
  except IsADirectoryError:
    raise ConfigError(f"{path} is a folder, not a config file") from None
  except OSError as err:
    raise ConfigError(f"{path}: cannot read it: {err.strerror or err}") from None
  except UnicodeDecodeError as err:
    raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
  try:
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
  except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
    raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                      f"{err}") from None
  try:
    return parse_config(data, base=path.parent)
  except ConfigError as err:
    raise ConfigError(f"{path}: {err}") from None


def saved_config(path: str | Path) -> SweepConfig:
  """A results folder's ``config.toml`` as the sweep wrote it, without checking it again.

  The file is :func:`to_toml` of a validated config, so its values are already
  canonical; nothing it names is imported or loaded (a model or a dataset given
  from Python, or an import path relative to another working folder, need
  not resolve). For reading results back (plots); :func:`load_config` checks
  a config that will run.

  Raises:
    ConfigError: the file is not TOML or lacks a key the sweep writes.
  """
  path = Path(path)
  try:
    data = tomllib.loads(path.read_text("utf-8"))
    seeds = data.get("seeds", TOP_LEVEL["seeds"])
    return SweepConfig(
        name=data.get("name", TOP_LEVEL["name"]),
        seeds=tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds),
        root_seed=data.get("root_seed", 0), eval_every=data["eval_every"],
        probes=tuple(data.get("probes", ())), probe_batch=data.get("probe_batch", 128),
        chunk_size=data.get("chunk_size", 256), lanes=data.get("lanes", "auto"),
        grid={a: tuple(v) for a, v in data["grid"].items()}, loss=data.get("loss", "auto"),
        metrics=tuple(data.get("metrics", ())), paths=tuple(data.get("paths", ())),
        base=dict(data.get("base", {})))
  except (tomllib.TOMLDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
    raise ConfigError(f"{path}: not a config the sweep wrote ({type(err).__name__}: "
                      f"{err})") from None


def to_toml(config: SweepConfig) -> str:
  """The resolved config as TOML text that :func:`load_config` reads back.

  Examples:
    >>> import tomllib
    >>> c = parse_config({"grid": {"init": [{"name": "normal", "stddev": 0.1}]}})
    >>> parse_config(tomllib.loads(to_toml(c))) == c
    True
  """
  data = config.to_dict()
  grid = data.pop("grid")
  lines = [f"{k} = {_toml_value(v)}" for k, v in data.items()
           if k not in ("loss", "metrics", "paths") or v != TOP_LEVEL[k]]
  lines += ["", "[grid]"] + [f"{k} = {_toml_value(v)}" for k, v in grid.items()]
  return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, (int, float)):
    return repr(value)
  if isinstance(value, str):
    return json.dumps(value)
  if isinstance(value, list):
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"
  if isinstance(value, Mapping):
    return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
  raise TypeError(f"cannot write {value!r} as TOML")


__all__ = ["load_config", "saved_config", "to_toml"]
