"""Deep perceptual metrics learned from two-alternative forced-choice (2AFC) judgments.

twoafc: the BAPPS split layout and the 2AFC score; score: 2AFC scores of registered metrics;
build: compression 2AFC splits from photos; heads: LPIPS-style heads on VGG16, their files and
the ranking network; train: fitting heads to judgments; cli: `jaxcomp perceptual`. The trained
heads are the metric `dpl:<path>` (jaxcomp/metrics/dpl.py, listed in the metric registry). This
package imports nothing heavy.
"""
