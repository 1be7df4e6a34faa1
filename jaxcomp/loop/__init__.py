"""The training-loop kit every trainer uses (codec, saliency net, perceptual heads).

    checkpoint   orbax manager with integrity (sha256 per part, corrupt checkpoints skipped),
                 the workdir lock and the run's config record (config.json)
    progress     steps/s and ETA
    writers      metric writers: `write_scalars(step, {name: value})` (TensorBoard or nothing)
    preemption   SIGTERM / SIGINT (or a pod's sync point) -> checkpoint and stop
    batches      a seeded batch order that resumed runs continue exactly
    driver       the loop: periodic logging, checkpoints and evaluation, NaN/Inf stop

A workdir of any trainer holds config.json, checkpoints/<step>/{state,data} and TensorBoard
events; rerunning in it resumes from the newest intact checkpoint.
"""
