"""lit_diffusion.compare"""
