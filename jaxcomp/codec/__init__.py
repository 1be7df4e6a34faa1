"""Learned codecs: transforms, GDN, fast up-sampling convolution, entropy models, hyperprior models."""
