"""The real images of the synthetic benchmark: photos that installed packages ship, and dead-leaves images."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

# Which photo goes to which split. The two motorcycle frames are a stereo pair: same split.
PHOTO_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "coffee", "rocket", "hubble_deep_field", "china", "camera", "brick", "grass"),
    "val": ("immunohistochemistry", "gravel", "coins"),
    "test": ("chelsea", "motorcycle_left", "motorcycle_right", "flower", "grace_hopper", "retina", "moon"),
}
TEXTURES_PER_SPLIT = {"train": 12, "val": 4, "test": 8}
TEXTURE_SIZE = 384


# ---------------------------------------------------------------- real photos
def load_photo(name: str) -> np.ndarray:
    """A photo that an installed package ships, as uint8 RGB ``[H, W, 3]``."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        arr = load_sample_image(f"{name}.jpg")
    elif name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
            arr = np.asarray(Image.open(fh).convert("RGB"))
    elif name.startswith("motorcycle_"):
        import skimage.data

        left, right, _ = skimage.data.stereo_motorcycle()
        arr = left if name.endswith("left") else right
    else:
        import skimage.data

        arr = getattr(skimage.data, name)()
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3].astype(np.uint8))


def dead_leaves(size: int, rng: np.random.Generator) -> np.ndarray:
    """A dead-leaves image: occluding discs with power-law radii, then camera blur, noise and JPEG."""
    from scipy.ndimage import gaussian_filter

    img = np.empty((size, size, 3), np.float32)
    img[:] = rng.uniform(0, 255, 3)
    rmin, rmax = 2.0, size / 4
    # p(r) ~ r^-3 between rmin and rmax (inverse-CDF sampling), scale-invariant like natural images
    n = int(size * size / 60)
    u = rng.uniform(size=n)
    radii = (rmin ** -2 - u * (rmin ** -2 - rmax ** -2)) ** -0.5
    centres = rng.uniform(-rmax / 2, size + rmax / 2, (n, 2))
    palette = rng.uniform(0, 255, (n, 3)) * rng.uniform(0.6, 1.0) + rng.uniform(-20, 20, 3)
    for (cx, cy), r, colour in zip(centres, radii, palette):
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, size)
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, size)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        img[y0:y1, x0:x1][mask] = colour
    sigma = rng.uniform(0.5, 1.2)
    for c in range(3):
        img[:, :, c] = gaussian_filter(img[:, :, c], sigma)
    img += rng.normal(0, rng.uniform(1.0, 4.0), img.shape)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=int(rng.integers(75, 96)))
    return np.asarray(Image.open(buf).convert("RGB"))


class CropSampler:
    """Random crops of a pool of images: random scale (antialiased), position and flip; flat crops rejected."""

    def __init__(self, images: list[np.ndarray], size: int, rng: np.random.Generator,
                 scale: tuple[float, float] = (0.35, 1.0)) -> None:
        self.images = [Image.fromarray(a) for a in images]
        self.size = size
        self.rng = rng
        self.scale = scale
        # sample photos in proportion to the square root of their area
        w = np.array([math.sqrt(i.size[0] * i.size[1]) for i in self.images])
        self.p = w / w.sum()

    def window(self, img: Image.Image, scale: float) -> tuple[float, float, float]:
        side = min(self.size / scale, min(img.size) - 1)
        return side, self.rng.uniform(0, img.size[0] - side), self.rng.uniform(0, img.size[1] - side)

    def sample(self) -> np.ndarray:
        for _ in range(20):
            img = self.images[self.rng.choice(len(self.images), p=self.p)]
            scale = math.exp(self.rng.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
            side, x, y = self.window(img, scale)
            crop = img.resize((self.size, self.size), Image.Resampling.LANCZOS, box=(x, y, x + side, y + side))
            arr = np.asarray(crop)
            if self.rng.random() < 0.5:
                arr = arr[:, ::-1]
            if arr.std() >= 8.0:
                return np.ascontiguousarray(arr)
        return np.ascontiguousarray(arr)

