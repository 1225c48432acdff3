"""Code packages shared by every Cloud Function of the project."""
