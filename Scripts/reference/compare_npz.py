#!/usr/bin/env python3
"""Compare the arrays of two .npz files, A (reference) and B (candidate).

Usage: compare_npz.py A.npz B.npz [--rtol 1e-4] [--atol 0]

For every key of A, prints the max absolute difference, max |A| (the reference
magnitude) and, for arrays of rank >= 1, the argmax agreement along the class axis (the last axis
e.g. [N, C] logits or [N, T, C] CTC outputs). Exits with
status 1 when a key is missing from B, shapes differ, max abs diff > atol + rtol * max|A|,
or any argmax differs.
"""
import argparse
import sys

import numpy as np


def argmax_agreement(ref, cand):
    """Fraction of positions whose argmax over the class axis agrees, or None for 0-d."""
    if ref.ndim == 0 or ref.size == 0:
        return None
    # Classifier outputs are [N, classes]; sequence outputs such as CTC are [N, T, classes]:
    # the class axis is the last one in both.
    axis = -1
    if ref.shape[axis] == 0:
        return None
    a = np.argmax(ref, axis=axis)
    b = np.argmax(cand, axis=axis)
    return float(np.mean(a == b)), int(np.sum(a != b)), int(a.size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", metavar="A.npz")
    parser.add_argument("candidate", metavar="B.npz")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=0.0)
    args = parser.parse_args()

    failed = False
    with np.load(args.reference, allow_pickle=False) as ref_archive, \
            np.load(args.candidate, allow_pickle=False) as cand_archive:
        extra = sorted(set(cand_archive.keys()) - set(ref_archive.keys()))
        if extra:
            print(f"note: only in {args.candidate}: {', '.join(extra)}")
        for key in ref_archive.keys():
            ref = ref_archive[key]
            if key not in cand_archive:
                print(f"{key}: FAIL missing from {args.candidate}")
                failed = True
                continue
            cand = cand_archive[key]
            if ref.shape != cand.shape:
                print(f"{key}: FAIL shape {list(ref.shape)} vs {list(cand.shape)}")
                failed = True
                continue
            ref64 = ref.astype(np.float64)
            cand64 = cand.astype(np.float64)
            if ref.size:
                diff = np.abs(ref64 - cand64)
                # NaN anywhere in either array counts as an infinite difference.
                max_diff = float(np.max(np.where(np.isnan(diff), np.inf, diff)))
                max_ref = float(np.max(np.abs(ref64)))
            else:
                max_diff = max_ref = 0.0
            limit = args.atol + args.rtol * max_ref
            ok = max_diff <= limit
            line = f"{key}: max_abs_diff={max_diff:.6g} max_abs_ref={max_ref:.6g} limit={limit:.6g}"
            agreement = argmax_agreement(ref64, cand64)
            if agreement is not None:
                fraction, mismatches, total = agreement
                line += f" argmax_agree={fraction:.4f} ({total - mismatches}/{total})"
                ok = ok and mismatches == 0
            print(("ok   " if ok else "FAIL ") + line)
            failed = failed or not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
