"""The `lit-diffusion` commands, one module each (data, sample, reflow, compare, toy2d, slurm, ...): thin typed
functions that jsonargparse parses (`parsing`), calling the library; `fit|validate|test` (fit.py) are
LightningCLI's, run by lit_diffusion.training.cli. lit_diffusion.cli dispatches to them."""
