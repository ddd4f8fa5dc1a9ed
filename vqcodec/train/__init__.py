"""Training: one readable accelerate loop, losses, data loading."""
