"""lit_diffusion: train and compare diffusion-family generative models with PyTorch Lightning."""

__version__ = "0.1.0"
