"""Inference: trained networks -> probabilities and labels at each image's own size."""
