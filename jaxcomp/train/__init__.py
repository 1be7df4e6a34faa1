"""Training: train state and step (more of the training system lives beside them)."""
