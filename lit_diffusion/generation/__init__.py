"""Generation: one noise convention, one batched sampling loop, one way to turn samples into images.

Used by `lit-diffusion sample`, `reflow`, training previews, compare's scoring and evaluation, so that a
sample's index alone decides its noise and label, whatever the batch size or the number of ranks.
"""
from lit_diffusion.generation.images import image_grid, quantize, save_png, to_uint8
from lit_diffusion.generation.loop import GeneratedBatch, generate, index_batches
from lit_diffusion.generation.noise import class_labels, rank_indices, sample_noise

__all__ = ["GeneratedBatch", "class_labels", "generate", "image_grid", "index_batches", "quantize", "rank_indices",
           "sample_noise", "save_png", "to_uint8"]
