"""lit_diffusion.training"""
