"""`python -m jaxcomp.train ...` (see jaxcomp/train/main.py)."""

from jaxcomp.train import main

main.run()
