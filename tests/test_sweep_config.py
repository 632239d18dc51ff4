"""Sweep configs: the schema's checks fail early, naming the key and what is accepted."""

import json
import tomllib
from pathlib import Path

import pytest

from jaxinit.sweep import config as config_lib
from jaxinit.sweep.config import ConfigError, load_config, parse_config, to_toml

TINY = Path(__file__).parent / "sweep_tiny.toml"


def test_defaults_and_expansion():
  config = parse_config({"seeds": 2, "grid": {"depth": [2, 4], "init": ["zeros", "he_normal"]}})
  models = config.models()
  assert len(models) == 8
  assert config.varying_axes() == ["init", "depth"]
  assert [m.seed for m in models[:2]] == [0, 1]
  assert models[0]["learning_rate"] == config_lib.AXES["learning_rate"]
  assert len({m.model_id for m in models}) == 8


def test_model_id_depends_only_on_cell_and_seed():
  small = parse_config({"seeds": [1], "grid": {"depth": 3}}).models()[0]
  big = parse_config({"seeds": [0, 1, 2], "grid": {"depth": [2, 3, 4],
                                                   "learning_rate": [0.01, 0.1]}}).models()
  same = [m for m in big if m.seed == 1 and m["depth"] == 3 and m["learning_rate"] == 0.01]
  assert len(same) == 1 and same[0].model_id == small.model_id
  # Spellings of the same initializer are the same cell.
  a = parse_config({"grid": {"init": "he_normal"}}).models()[0]
  b = parse_config({"grid": {"init": {"name": "kaiming_normal"}}}).models()[0]
  assert a.model_id == b.model_id
  assert a.model_id != parse_config({"grid": {"init": "lecun_normal"}}).models()[0].model_id


@pytest.mark.parametrize("data, fragments", [
    ({"grid": {"lr": 0.1}}, ["[grid]", "'lr'", "learning_rate"]),
    ({"grid": {"depht": 2}}, ["did you mean 'depth'"]),
    ({"steps": 100}, ["'steps' is a grid axis", "[grid]"]),
    ({"grid": {"eval_every": 10}}, ["'eval_every' is a top-level key"]),
    ({"seed": 3}, ["the top level", "'seed'", "seeds"]),
])
def test_unknown_keys(data, fragments):
  with pytest.raises(ConfigError) as err:
    parse_config(data)
  for fragment in fragments:
    assert fragment in str(err.value)


@pytest.mark.parametrize("grid, fragments", [
    ({"depth": [2, -1]}, ["[grid] depth[1]", "positive int", "-1"]),
    ({"width": 8.5}, ["[grid] width", "positive int"]),
    ({"learning_rate": 0.0}, ["[grid] learning_rate", "> 0"]),
    ({"weight_variance": [1.0, float("inf")]}, ["weight_variance[1]", "finite"]),
    ({"use_bias": "yes"}, ["use_bias", "true or false"]),
    ({"activation": "relu6"}, ["unknown activation 'relu6'", "tanh"]),
    ({"optimizer": "adamax"}, ["unknown optimizer 'adamax'", "adam", "lars"]),
    ({"optimizer": {"name": "adam", "beta1": 0.9}}, ["no option 'beta1'", "b1"]),
    ({"optimizer": {"name": "sgd", "learning_rate": 0.1}}, ["its own axis"]),
    ({"model": "transformer"}, ["unknown model", "mlp", "resmlp", "cnn1d"]),
    ({"model": {"name": "cnn1d", "kernel_size": 2.5}}, ["kernel_size", "int"]),
    ({"dataset": "cifar10"}, ["unknown dataset 'cifar10'", "mnist1d", "teacher_student"]),
    ({"dataset": {"name": "teacher_student", "n_train": "many"}}, ["n_train", "int"]),
    ({"depth": []}, ["empty list"]),
    ({"depth": [2, 2]}, ["twice"]),
    ({"steps": 150}, ["steps = 150", "eval_every = 100"]),
])
def test_bad_values(grid, fragments):
  with pytest.raises(ConfigError) as err:
    parse_config({"grid": grid})
  for fragment in fragments:
    assert fragment in str(err.value), str(err.value)


@pytest.mark.parametrize("init, fragments", [
    ("he_normall", ["[grid] init", "initializer name must be one of", "'he_normall'"]),
    ({"name": "normal", "std": 0.1}, ["[grid] init", "'normal'", "stddev"]),
    ({"stddev": 0.1}, ["[grid] init", "None"]),
    (3, ["[grid] init", "initializer name or a table"]),
])
def test_unknown_initializer(init, fragments):
  with pytest.raises(ConfigError) as err:
    parse_config({"grid": {"init": ["he_normal", init]}})
  for fragment in fragments:
    assert fragment in str(err.value), str(err.value)


@pytest.mark.parametrize("data, fragment", [
    ({"seeds": 0}, "seeds must be a count"),
    ({"seeds": [1, 1]}, "seeds lists a seed twice"),
    ({"probes": ["curvature"]}, "unknown probe 'curvature'"),
    ({"name": "a/b"}, "name must be"),
    ({"eval_every": 0}, "eval_every must be a positive int"),
])
def test_bad_top_level(data, fragment):
  with pytest.raises(ConfigError, match=fragment):
    parse_config(data)


def test_load_config_names_the_file(tmp_path):
  bad = tmp_path / "bad.toml"
  bad.write_text('[grid]\ndepth = [2, "deep"]\n')
  with pytest.raises(ConfigError) as err:
    load_config(bad)
  assert str(bad) in str(err.value) and "depth[1]" in str(err.value)
  broken = tmp_path / "broken.toml"
  broken.write_text("[grid\n")
  with pytest.raises(ConfigError, match="not valid TOML"):
    load_config(broken)


def test_round_trips():
  config = load_config(TINY)
  assert parse_config(tomllib.loads(to_toml(config))) == config
  assert parse_config(json.loads(json.dumps(config.to_dict()))) == config
  quickstart = load_config(Path(__file__).parents[1] / "experiments/configs/quickstart.toml")
  assert len(quickstart.models()) == 36


def test_cli_rejects_a_bad_config_before_compiling(tmp_path, capsys):
  from jaxinit import cli
  bad = tmp_path / "bad.toml"
  bad.write_text('[grid]\ninit = ["he_normal", "glorot"]\n')
  assert cli.main(["sweep", str(bad), "--out", str(tmp_path / "out")]) == 2
  message = capsys.readouterr().err
  assert "[grid] init[1]" in message and "'glorot'" in message
  assert not (tmp_path / "out").exists()
  assert cli.main(["sweep", str(TINY), "--dry-run"]) == 0
  assert "1 models" in capsys.readouterr().out
