"""lit_diffusion.samplers"""
