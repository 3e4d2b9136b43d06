"""One training loop for every gen3d model, and the tasks that plug into it."""
