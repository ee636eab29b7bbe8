"""lit_diffusion.objectives"""
