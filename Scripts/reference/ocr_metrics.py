#!/usr/bin/env python3
"""Exact match and character error rate of PP-OCR recognizer outputs.

Usage: ocr_metrics.py OUTPUTS.npz LABELS.json

OUTPUTS.npz holds the recognizer's [N, T, classes] output (first array); LABELS.json is the
evaluation set's transcript file from `make models` (texts, character table). Decoding is
greedy CTC (argmax per step, merge repeats, drop blank), as rapidocr does. Prints JSON.
"""
import json
import sys

import numpy as np


def main():
    outputs, labels = sys.argv[1], sys.argv[2]
    with open(labels, encoding="utf-8") as handle:
        meta = json.load(handle)
    archive = np.load(outputs)
    probs = archive[archive.files[0]]
    character, blank = meta["character"], meta.get("blank_index", 0)
    texts = meta["texts"][: probs.shape[0]]
    exact, errors, chars = 0, 0, 0
    for row, truth in zip(probs.argmax(axis=2), texts):
        keep = np.ones(len(row), bool)
        keep[1:] = row[1:] != row[:-1]
        keep &= row != blank
        text = "".join(character[i] for i in row[keep])
        exact += text == truth
        previous = list(range(len(truth) + 1))
        for i, a in enumerate(text, 1):
            current = [i]
            for j, b in enumerate(truth, 1):
                current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
            previous = current
        errors += previous[-1]
        chars += len(truth)
    print(json.dumps({"samples": len(texts), "exact_match": exact / len(texts), "cer": errors / max(1, chars)}))


if __name__ == "__main__":
    main()
