#!/usr/bin/python3
"""Writes the small NumPy fixtures NpyReaderTests read, with Debian's python3-numpy (apt-get install python3-numpy).

Run from this folder: /usr/bin/python3 make_fixtures.py. Values are deterministic (arange-based, no RNG), so the
test can recompute every element; expected.json records shape, dtype and a few values for a second check.
"""
import json
import numpy as np

np.save("f32_2x3.npy", np.arange(6, dtype=np.float32).reshape(2, 3) / np.float32(4))
np.save("u8_4x2x2.npy", (np.arange(16, dtype=np.uint8) * 17).reshape(4, 2, 2))
np.save("i64_5.npy", np.array([0, 1, 2, -3, 2**40], dtype=np.int64))
np.save("i32_scalar.npy", np.array(7, dtype=np.int32))
np.save("f64_3.npy", np.arange(3, dtype=np.float64))
np.save("f32_be_3.npy", np.arange(3, dtype=">f4"))
np.save("f32_fortran_2x3.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
np.save("object_2.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
big = np.zeros((2,), dtype=[("a", "<f4"), ("b", "<i4")])
np.save("structured_2.npy", big)
# A dataset in the layout NearML's npz provider reads: features + labels, train and test.
x_train = (np.arange(40 * 6, dtype=np.float32).reshape(40, 6) % 7) / np.float32(7)
y_train = (np.arange(40, dtype=np.int64) % 3)
x_test = (np.arange(12 * 6, dtype=np.float32).reshape(12, 6) % 5) / np.float32(5)
y_test = (np.arange(12, dtype=np.int64) % 3)
np.savez("dataset.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
np.savez_compressed("dataset_compressed.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
with open("expected.json", "w") as f:
    json.dump({"numpy": np.__version__, "f32_2x3": [float(v) for v in (np.arange(6, dtype=np.float32) / np.float32(4))],
               "i64_5": [0, 1, 2, -3, 2**40]}, f, indent=1)
