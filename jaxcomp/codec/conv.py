"""Convolutions with PyTorch semantics, and a fast sub-pixel form of the transposed convolution.

All tensors are NHWC; kernels are HWIO. `conv2d` is PyTorch's `Conv2d(k, stride=s, padding=k//2)`.
`upconv2d` equals PyTorch's `ConvTranspose2d(k, stride=s, padding=p, output_padding=s+2p-k)`
(output exactly s times the input) but computes it as ONE ordinary stride-1 convolution producing
s*s phases, followed by depth-to-space. XLA:CPU differentiates `lax.conv_transpose` about 80x slower
than PyTorch; the phase form avoids the zero-inserted input entirely (see `jaxcomp bench upsample`).

Transposed-convolution kernels are stored as w[ky, kx, c_in, c_out] with
    out[s*i + ky - p, s*j + kx - p, o] += x[i, j, c] * w[ky, kx, c, o],
i.e. PyTorch's ConvTranspose2d weight [c_in, c_out, kH, kW] transposed to (2, 3, 0, 1).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")


def conv2d(x, kernel, stride=1):
  """Strided correlation with zero padding k//2 on every side (PyTorch Conv2d, odd k).

  Args:
    x: [B, H, W, C_in].
    kernel: [k, k, C_in, C_out].
    stride: int.

  Returns:
    [B, ceil(H/stride), ceil(W/stride), C_out] for odd k.
  """
  pad = kernel.shape[0] // 2
  return lax.conv_general_dilated(
      x, kernel.astype(x.dtype), (stride, stride), ((pad, pad), (pad, pad)),
      dimension_numbers=_DN)


@functools.lru_cache(maxsize=None)
def _phase_taps(kernel_size, stride, padding):
  """For each output phase r, the (tap k, input offset d) pairs with s*d = r + p - k.

  Returns (taps, d_min, d_max): taps[r] is a tuple of (k, d).
  """
  taps = []
  for r in range(stride):
    taps.append(tuple((k, (r + padding - k) // stride)
                      for k in range(kernel_size) if (r + padding - k) % stride == 0))
  ds = [d for phase in taps for _, d in phase]
  return tuple(taps), min(ds), max(ds)


def phase_kernel(kernel, stride, padding):
  """Rearranges a transposed-conv kernel into the stride-1 kernel of its s*s output phases.

  Args:
    kernel: [k, k, C_in, C_out] transposed-conv kernel (layout in the module docstring).
    stride: s.
    padding: p.

  Returns:
    [t, t, C_in, s*s*C_out] kernel (t = d_max - d_min + 1) whose output channel
    (ry*s + rx)*C_out + o holds phase (ry, rx) of output channel o; and (d_min, d_max).
  """
  k = kernel.shape[0]
  taps, d_min, d_max = _phase_taps(k, stride, padding)
  size = d_max - d_min + 1
  index = np.full((size, size, stride, stride), k * k, dtype=np.int32)  # k*k -> zero tap
  for ry, phase_y in enumerate(taps):
    for rx, phase_x in enumerate(taps):
      for ky, dy in phase_y:
        for kx, dx in phase_x:
          index[dy - d_min, dx - d_min, ry, rx] = ky * k + kx
  c_in, c_out = kernel.shape[2:]
  flat = jnp.concatenate(
      [kernel.reshape(k * k, c_in, c_out), jnp.zeros((1, c_in, c_out), kernel.dtype)])
  gathered = flat[index.reshape(-1)].reshape(size, size, stride, stride, c_in, c_out)
  return gathered.transpose(0, 1, 4, 2, 3, 5).reshape(size, size, c_in, stride * stride * c_out), (
      d_min, d_max)


def upconv2d(x, kernel, stride=2, padding=None):
  """Transposed convolution (PyTorch ConvTranspose2d semantics) in sub-pixel form.

  Args:
    x: [B, H, W, C_in].
    kernel: [k, k, C_in, C_out] (layout in the module docstring).
    stride: s.
    padding: p; default k//2, CompressAI's `deconv`. The output padding is s + 2p - k, so the output
      is exactly [B, s*H, s*W, C_out] (requires 0 <= s + 2p - k < s).

  Returns:
    [B, s*H, s*W, C_out].
  """
  k = kernel.shape[0]
  padding = k // 2 if padding is None else padding
  if not 0 <= stride + 2 * padding - k < stride:
    raise ValueError(f"k={k}, s={stride}, p={padding} does not give an output of s*H")
  if stride == 1:
    return conv2d(x, kernel[::-1, ::-1])
  pk, (d_min, d_max) = phase_kernel(kernel.astype(x.dtype), stride, padding)
  y = lax.conv_general_dilated(
      x, pk, (1, 1), ((-d_min, d_max), (-d_min, d_max)), dimension_numbers=_DN)
  b, h, w, _ = y.shape
  c_out = kernel.shape[-1]
  y = y.reshape(b, h, w, stride, stride, c_out).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, h * stride, w * stride, c_out)


def upconv2d_reference(x, kernel, stride=2, padding=None):
  """The same transposed convolution through `lax.conv_transpose` (zero insertion); for tests."""
  k = kernel.shape[0]
  padding = k // 2 if padding is None else padding
  lo = k - 1 - padding
  hi = lo + stride + 2 * padding - k
  return lax.conv_transpose(
      x, kernel[::-1, ::-1].astype(x.dtype), (stride, stride), ((lo, hi), (lo, hi)),
      dimension_numbers=_DN)


def _uniform_init(bound):
  """U(-bound, bound) initializer."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _kernel_and_bias(module, c_in, fan_in_axes, zero_init=False):
  """The `kernel` [k, k, c_in, features] and `bias` [features] parameters of a conv module.

  PyTorch's default init (kaiming_uniform with a=sqrt(5), as CompressAI leaves it): kernel and
  bias both U(-b, b) with b = 1/sqrt(fan_in), fan_in the product of the kernel's `fan_in_axes`
  (Conv2d: k*k*C_in; ConvTranspose2d: PyTorch reads its weight's dim 1, k*k*C_out). Or zeros.
  """
  k = module.kernel_size
  shape = (k, k, c_in, module.features)
  bound = 1.0 / np.sqrt(int(np.prod([shape[a] for a in fan_in_axes])))
  init = nn.initializers.zeros if zero_init else _uniform_init(bound)
  kernel = module.param("kernel", init, shape)
  bias = module.param("bias", init, (module.features,))
  return kernel, bias


class Conv(nn.Module):
  """Conv2d(k, stride, padding=k//2) with bias. [B, H, W, C_in] -> [B, H/s, W/s, features].

  zero_init: start with zero kernel and bias (an output branch that starts silent).
  """

  features: int
  kernel_size: int = 5
  stride: int = 2
  zero_init: bool = False

  @nn.compact
  def __call__(self, x):
    kernel, bias = _kernel_and_bias(self, x.shape[-1], (0, 1, 2), self.zero_init)
    return conv2d(x, kernel, self.stride) + bias.astype(x.dtype)


class UpConv(nn.Module):
  """ConvTranspose2d(k, stride, padding=k//2, output_padding=stride-1) with bias, fast form.

  [B, H, W, C_in] -> [B, s*H, s*W, features].
  """

  features: int
  kernel_size: int = 5
  stride: int = 2

  @nn.compact
  def __call__(self, x):
    # PyTorch computes ConvTranspose2d's fan-in from weight.size(1) * k * k = C_out * k * k.
    kernel, bias = _kernel_and_bias(self, x.shape[-1], (0, 1, 3))
    return upconv2d(x, kernel, self.stride) + bias.astype(x.dtype)
