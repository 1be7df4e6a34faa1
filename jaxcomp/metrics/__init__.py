"""Image-quality metrics as JAX functions and training losses.

One module per metric (psnr: mse/psnr, ssim: ssim/ms_ssim, gmsd, lpips, dists, fsim: FSIM/FSIMc,
vsi, nlpd, dpl with its heads in dpl_heads; _zhang holds what FSIM and VSI share), and
`registry`: name -> `Metric` with the value and the training distortion. The VGG16 backbone,
the pretrained weights and the shared array ops are in `jaxcomp.nets`. Every metric takes NHWC float images in [0, 1] (RGB) and returns
one value per image, shape [B]. Import the modules you need; this package imports nothing
heavy so that the command line stays fast.
"""
