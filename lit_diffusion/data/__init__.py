"""lit_diffusion.data"""
