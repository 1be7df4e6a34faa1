"""Learned codecs: transforms, GDN, fast up-sampling convolution, entropy models and their integer
CDF tables, hyperprior models, the exported-model directory."""
