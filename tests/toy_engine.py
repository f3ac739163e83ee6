"""A tiny, real engine used only by the pipeline tests: random-noise images, some rejections.

``delay`` slows each sample down so kill-and-resume tests can interrupt a build mid-way.
"""

from __future__ import annotations

import time

import numpy as np

from engines.base import PROMPT_OCR, Engine, Param, Rejection, Result, Sample
from renderers.image import encode_png


class Toy(Engine):
    name = "toy"
    version = "1"
    description = "noise images for pipeline tests"
    params = (
        Param("size", 24, "image side in px", int, minimum=1),
        Param("delay", 0.0, "seconds to sleep per sample", float, minimum=0),
        Param("pages", 1, "images per sample", int, minimum=1),
    )

    def sample(self, position: int) -> Result:
        if self.p["delay"]:
            time.sleep(self.p["delay"])
        if position % 7 == 3:
            return Rejection("seven", f"position {position} is 3 mod 7", source=f"toy:{position}")
        if position % 11 == 5:
            raise ValueError("an engine bug that must not kill the shard")
        rng = self.rng(position)
        side = self.p["size"]
        images = [encode_png((rng.random((side, side, 3)) * 255).astype(np.uint8)) for _ in range(self.p["pages"])]
        words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"], size=3))
        return Sample("toy", PROMPT_OCR, f"{position}: {words}", images, source=f"toy:{position}",
                      boxes=[[1, 2, 10, 12]], colors=["red"], meta={"side": side})
