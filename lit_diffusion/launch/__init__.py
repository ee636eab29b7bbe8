"""lit_diffusion.launch"""
