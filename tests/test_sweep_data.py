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


def _labelled(y_train, y_test):
  return {"x_train": np.ones((len(y_train), 2)), "y_train": y_train,
          "x_test": np.ones((len(y_test), 2)), "y_test": y_test}


def test_task_is_inferred_from_the_labels_dtype_and_class_like_floats_warn():
  import warnings  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep.data import from_arrays  # pylint: disable=import-outside-toplevel
  classes = np.arange(40) % 3
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # none of these warns
    for y, task in ((classes, "classification"), (classes.astype(np.uint8), "classification"),
                    (classes % 2 == 0, "classification"),
                    (np.linspace(0, 1, 40), "regression"),  # continuous targets
                    (np.arange(40.0), "regression"),         # whole numbers, all distinct
                    (classes - 1.0, "regression"),           # negative: not class labels
                    (classes[:, None] * 1.0, "regression")):  # (n, 1): a target column
      assert from_arrays(_labelled(y, y[:10])).task == task, y
    assert from_arrays({**_labelled(classes * 1.0, classes[:10] * 1.0),
                        "task": "regression"}).task == "regression"
    explicit = from_arrays(_labelled(classes * 1.0, classes[:10] * 1.0), task="classification")
    assert explicit.task == "classification" and explicit.y_train.dtype == np.int32
  for floats in (classes.astype(np.float32), classes.astype(np.float64)):
    with pytest.warns(UserWarning, match=r'3 distinct values \(0, 1, 2\).*task = '
                                         r'"classification"') as record:
      assert from_arrays(_labelled(floats, floats[:10])).task == "regression"
    assert 'task = "auto"' in str(record[0].message)


def test_integer_labels_of_shape_n_by_1_are_refused_naming_the_fix():
  from jaxinit.sweep.data import from_arrays  # pylint: disable=import-outside-toplevel
  classes = (np.arange(40) % 3)[:, None]
  with pytest.raises(ValueError, match=r"y_train: integer labels of shape \(40, 1\).*y.ravel"):
    from_arrays(_labelled(classes, classes[:10]))
  assert from_arrays(_labelled(classes, classes[:10]), task="regression").task == "regression"


def test_a_dataset_function_that_raises_is_named_in_one_line(tmp_path):
  (tmp_path / "raising_data_21.py").write_text(
      "def boom(n=3):\n  raise RuntimeError('boom in my loader\\nsecond line')\n")
  with pytest.raises(ValueError, match=r"^dataset 'raising_data_21:boom' with options \{\}: "
                                       r"RuntimeError: boom in my loader$"):
    load_dataset("raising_data_21:boom", [str(tmp_path)])
