#!/usr/bin/env python3
"""Write small .npy/.npz fixtures for the WhittleIO NumPy tests.

Usage: make_npy_fixtures.py OUTDIR

Every array's values are simple closed forms, so the Swift tests can state the expected
values directly. Files cover every supported dtype, a 0-d array, big-endian data, format
versions 2.0 and 3.0, and files Whittle must reject (Fortran order, object arrays, float16).
"""
import argparse
import os

import numpy as np


def save(outdir, name, array, version=None, allow_pickle=False):
    path = os.path.join(outdir, name)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version, allow_pickle=allow_pickle)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    args = parser.parse_args()
    out = args.outdir
    os.makedirs(out, exist_ok=True)

    # One array per supported dtype (little-endian, numpy's default on x86/arm).
    f = (np.arange(6).reshape(2, 3) * 0.5 - 1.0)
    save(out, "f4.npy", f.astype("<f4"))
    save(out, "f8.npy", (f + 0.125).astype("<f8"))
    save(out, "i8.npy", np.array([0, -3, 2**40, -(2**40), 7], dtype="<i8"))
    save(out, "i4.npy", np.array([[1, -2], [2**31 - 1, -(2**31)]], dtype="<i4"))
    save(out, "u1.npy", np.array([0, 1, 128, 255], dtype="|u1"))
    save(out, "i1.npy", np.array([-128, -1, 0, 127], dtype="|i1"))
    save(out, "b1.npy", np.array([True, False, True], dtype="|b1"))

    # 0-d array, and an empty array.
    save(out, "scalar_f4.npy", np.array(2.5, dtype="<f4"))
    save(out, "empty_f4.npy", np.zeros((0, 3), dtype="<f4"))

    # Big-endian variants, converted on read.
    save(out, "f4_be.npy", f.astype(">f4"))
    save(out, "f8_be.npy", (f + 0.125).astype(">f8"))
    save(out, "i8_be.npy", np.array([0, -3, 2**40, -(2**40), 7], dtype=">i8"))
    save(out, "i4_be.npy", np.array([[1, -2], [2**31 - 1, -(2**31)]], dtype=">i4"))

    # Header format versions 2.0 (uint32 header length) and 3.0 (utf-8 header).
    save(out, "f4_v2.npy", f.astype("<f4"), version=(2, 0))
    save(out, "f4_v3.npy", f.astype("<f4"), version=(3, 0))

    # Files that must be rejected with a clear error.
    save(out, "fortran_f4.npy", np.asfortranarray(f.astype("<f4")))
    save(out, "object.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    save(out, "f2.npy", np.array([1.0, 2.0], dtype="<f2"))

    # Archives: stored (np.savez) and deflated (np.savez_compressed).
    x = (np.arange(24, dtype=np.float64).reshape(4, 1, 2, 3) / 8.0)
    y = np.array([3, 0, 2, 1], dtype=np.int64)
    np.savez(os.path.join(out, "archive.npz"), x=x.astype(np.float32), y=y)
    np.savez_compressed(os.path.join(out, "compressed.npz"),
                        x=x.astype(np.float32), y=y, mask=np.array([True, False]))
    # A dataset with float64 inputs and whole-number float labels.
    np.savez(os.path.join(out, "dataset_f8.npz"), x=x, y=y.astype(np.float64))


if __name__ == "__main__":
    main()
