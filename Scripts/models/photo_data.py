"""Photo crops for ImageNet models from images shipped in scikit-image and scikit-learn."""
import os

import numpy as np
from PIL import Image

# (file, package, sanity classes or None); sanity facts from real-models.md
PHOTOS = [
    ("chelsea.png", "skimage", range(281, 286)),      # cat
    ("coffee.png", "skimage", [967]),                 # espresso
    ("rocket.jpg", "skimage", [657]),                 # missile
    ("motorcycle_left.png", "skimage", [665]),        # moped
    ("china.jpg", "sklearn", [698]),                  # palace
    ("flower.jpg", "sklearn", [985]),                 # daisy
    ("astronaut.png", "skimage", None),
    ("motorcycle_right.png", "skimage", None),
]


def photo_path(name, package):
    if package == "skimage":
        import skimage.data
        return os.path.join(os.path.dirname(skimage.data.__file__), name)
    import sklearn.datasets
    return os.path.join(os.path.dirname(sklearn.datasets.__file__), "images", name)


def load(name, package):
    return Image.open(photo_path(name, package)).convert("RGB")


def normalise(img224):
    a = np.asarray(img224, np.float32)
    return ((a - 127.0) / 128.0).transpose(2, 0, 1)


def centre_crop(img):
    """RGB, short side 256 (bicubic), centre crop 224, (x-127)/128, CHW."""
    w, h = img.size
    s = 256.0 / min(w, h)
    img = img.resize((int(round(w * s)), int(round(h * s))), Image.BICUBIC)
    w, h = img.size
    l, t = (w - 224) // 2, (h - 224) // 2
    return normalise(img.crop((l, t, l + 224, t + 224)))


def random_crop(img, rng):
    """A square crop of 55-100% of the short side at a random place, maybe mirrored,
    resized to 224 (bicubic)."""
    w, h = img.size
    side = int(round(min(w, h) * rng.uniform(0.55, 1.0)))
    l = int(rng.integers(0, w - side + 1))
    t = int(rng.integers(0, h - side + 1))
    crop = img.crop((l, t, l + side, t + side)).resize((224, 224), Image.BICUBIC)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return normalise(crop)


def crops(per_photo, seed, include_centre):
    rng = np.random.default_rng(seed)
    out, src = [], []
    for i, (name, pkg, _) in enumerate(PHOTOS):
        img = load(name, pkg)
        n = per_photo
        if include_centre:
            out.append(centre_crop(img))
            src.append(i)
            n -= 1
        for _ in range(n):
            out.append(random_crop(img, rng))
            src.append(i)
    return np.stack(out).astype(np.float32), np.array(src, np.int64)
