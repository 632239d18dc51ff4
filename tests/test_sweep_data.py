"""The dataset loaders of the sweep engine on their real data (the [data] extra)."""

import numpy as np
import pytest

from jaxinit.sweep.data import load_dataset


def test_mnist1d_shapes_and_classes(tmp_path, monkeypatch):
  pytest.importorskip("mnist1d")
  monkeypatch.setenv("JAXINIT_CACHE_DIR", str(tmp_path))
  data = load_dataset("mnist1d")
  assert data.x_train.shape == (4000, 40) and data.x_test.shape == (1000, 40)
  assert data.task == "classification" and data.num_outputs == 10
  assert set(np.unique(data.y_train)) == set(range(10))
  assert np.all(np.isfinite(data.x_train))


def test_digits_shapes_and_classes():
  pytest.importorskip("sklearn")
  data = load_dataset("digits")
  assert data.x_train.shape[1] == 64
  assert data.x_train.shape[0] + data.x_test.shape[0] == 1797
  assert data.num_outputs == 10 and set(np.unique(data.y_test)) <= set(range(10))
