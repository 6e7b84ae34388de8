"""Training: the one loop, method recipes, checkpoints and run folders."""
