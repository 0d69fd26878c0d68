#!/usr/bin/env python3
"""Exact match and character error rate of PP-OCR recognizer outputs.

Usage: ocr_metrics.py OUTPUTS.npz LABELS.json

OUTPUTS.npz holds the recognizer's [N, T, classes] output (first array), e.g. from
`whittle run MODEL --encodings E`; LABELS.json is the evaluation set's transcript file from
`make models` (texts, character table). Decoding and the edit distance are those of
Scripts/models/reference_eval.py (greedy CTC, as rapidocr does). Prints JSON.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from reference_eval import ctc_greedy, edit_distance  # noqa: E402


def main():
    outputs, labels = sys.argv[1], sys.argv[2]
    with open(labels, encoding="utf-8") as handle:
        meta = json.load(handle)
    archive = np.load(outputs)
    probs = archive[archive.files[0]]
    texts = meta["texts"][: probs.shape[0]]
    predicted = ctc_greedy(probs, meta["character"], blank=meta.get("blank_index", 0))
    exact = sum(p == t for p, t in zip(predicted, texts))
    errors = sum(edit_distance(p, t) for p, t in zip(predicted, texts))
    chars = sum(len(t) for t in texts)
    print(json.dumps({"samples": len(texts), "exact_match": exact / len(texts), "cer": errors / max(1, chars)}))


if __name__ == "__main__":
    main()
