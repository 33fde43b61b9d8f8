"""Grid encoders, the prompt builder, augmentations and answer parsing."""
