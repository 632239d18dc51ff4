"""The sweep's activation axis takes DKS/TAT transformed activations, solved per depth for
the plain network, as experiments/deep_plain_nets.py builds its TAT and DKS networks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxinit import sweep, theory
from jaxinit.sweep import activations
from jaxinit.sweep.compile import make_program
from jaxinit.sweep.data import load_dataset
from jaxinit.sweep.program import network

POINTS = np.array([-2.0, -0.6, 0.0, 0.6, 1.5], np.float32)
DATA = {"name": "teacher_student", "n_train": 64, "n_test": 32, "in_features": 8,
        "out_features": 3}


def test_a_deep_plain_mlp_sweeps_tat_leaky_relu_against_relu():
  config = {"seeds": 1, "eval_every": 10, "probes": [], "lanes": 1,
            "grid": {"dataset": DATA, "model": "mlp", "depth": 20, "width": 8,
                     "activation": ["relu", "tat:leaky_relu"], "init": "lecun_normal",
                     "learning_rate": 0.01, "batch_size": 16, "steps": 10}}
  result = sweep.run_sweep(config, progress=False)
  assert [r["activation"] for r in result.rows] == ["relu", "tat:leaky_relu"]
  assert all(math.isfinite(r["final_test_loss"]) for r in result.rows), result.rows
  parsed = sweep.parse_config(config)
  spec = parsed.models()[1]
  built = network(make_program(spec, load_dataset(DATA), parsed, 1))
  used = built.target.activation  # the model's activation, as the sweep built it
  expected = theory.tat("leaky_relu", theory.mlp(20))
  np.testing.assert_allclose(np.asarray(used(POINTS)), np.asarray(expected(POINTS)),
                             rtol=0, atol=0)
  assert used != theory.tat("leaky_relu", theory.mlp(40))  # solved for this depth


def test_transformed_activations_are_the_deep_plain_nets_study_s():
  """The study builds its TAT network through the sweep's path (one path, no copy)."""
  from jaxinit_experiments import deep_plain_nets as study  # pylint: disable=C0415
  arm = study._arm("tat", "mlp", 20, 4, 3, 2)  # pylint: disable=protected-access
  assert arm.activation == theory.tat("leaky_relu", theory.mlp(20), c_val_0=study.TAT_C_VAL_0)
  assert arm.activation == activations.resolve(study.TRANSFORMED["tat"], 20)
  assert study.TRANSFORMED["dks"] == activations.check_activation("dks", study.TRANSFORMED["dks"])


@pytest.mark.parametrize("value, words", [
    ("tat:leaky_rel", "did you mean 'leaky_relu'"),
    ({"name": "dks", "family": "tanh", "c_val_0": 0.5}, "dks takes the targets"),
    ("tat", "transformed activation"),
])
def test_bad_transformed_activations_are_config_errors(value, words):
  with pytest.raises(sweep.ConfigError, match="activation") as err:
    sweep.parse_config({"grid": {"activation": value}})
  assert words in str(err.value)


def test_a_residual_network_refuses_a_transformed_activation():
  config = {"probes": [], "eval_every": 1,
            "grid": {"dataset": DATA, "model": "resmlp", "activation": "dks:softplus",
                     "batch_size": 16, "steps": 1}}
  with pytest.raises(sweep.ConfigError, match="plain"):
    sweep.run_sweep(config, progress=False)


@pytest.mark.parametrize("activation, words", [
    ('{ name = "tat", family = "leaky_relu", c_val_0 = 0.9 }', "c_val_0 = 0.9 is out of reach"),
    ('{ name = "tat", family = "leaky_relu", c_val_0 = 1.5 }', "c_val_0 must be"),
    ('{ name = "dks", family = "tanh", c_slope_1 = 0.5 }', "c_slope_1 must be"),
    ('"tat:relu"', "TAT cannot shape a plain ReLU"),
])
def test_dry_run_refuses_targets_the_theory_cannot_solve_as_a_run_does(tmp_path, capsys,
                                                                      activation, words):
  """TAT leaky ReLU with c_val_0 = 0.9 has no solution for a plain net of depth 2 (even
  ReLUs give C_f(0) = 0.49): a legitimate refusal, reported by ``--dry-run`` too."""
  from jaxinit import cli  # pylint: disable=import-outside-toplevel
  config = tmp_path / "tat.toml"
  config.write_text(f'probes = []\n[grid]\ndataset = {{ name = "teacher_student", n_train = 16 }}'
                    f'\nactivation = {activation}\ndepth = 2\nwidth = 4\nbatch_size = 8\n')
  with pytest.raises(sweep.ConfigError) as err:
    sweep.run_sweep(sweep.load_config(config), progress=False, out_dir=tmp_path / "out")
  assert words in str(err.value) and "activation=" in str(err.value), str(err.value)
  capsys.readouterr()
  assert cli.main(["sweep", str(config), "--dry-run"]) == 2
  printed = capsys.readouterr().err.strip().splitlines()
  assert printed == [f"jaxinit sweep: {err.value}"], printed
  assert not (tmp_path / "out").exists()
