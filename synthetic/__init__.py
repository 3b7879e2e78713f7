"""The procedural media world and the small CLIP model trained on it.

Pretrained CLIP weights cannot be downloaded everywhere mmsearch runs (tests, CI, air-gapped
demos), so mmsearch ships a small open_clip model trained on a seeded world of coloured shapes.
This package renders that world (images, videos, a product catalogue, with exact ground truth)
and trains the model (``python -m synthetic.train``). Demo, tests and the quality
benchmark use both; real deployments should use a real pretrained CLIP.
"""

from synthetic.corpus import generate_corpus, load_truth, write_truth
from synthetic.images import generate_images
from synthetic.products import generate_products
from synthetic.scene import Background, ObjectSpec, Scene, sample_scene, sample_training_scene
from synthetic.truth import (
    CorpusTruth,
    ImageTruth,
    NearDuplicate,
    Product,
    ProductTruth,
    VideoMoment,
    VideoTruth,
)
from synthetic.video import generate_videos

__all__ = [
    "Background",
    "CorpusTruth",
    "ImageTruth",
    "NearDuplicate",
    "ObjectSpec",
    "Product",
    "ProductTruth",
    "Scene",
    "VideoMoment",
    "VideoTruth",
    "generate_corpus",
    "generate_images",
    "generate_products",
    "generate_videos",
    "load_truth",
    "sample_scene",
    "sample_training_scene",
    "write_truth",
]
