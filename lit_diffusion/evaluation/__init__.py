"""lit_diffusion.evaluation"""
