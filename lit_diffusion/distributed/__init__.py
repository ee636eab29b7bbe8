"""lit_diffusion.distributed"""
