"""SAE side of the activation store: a shuffled token loader and a SAELens export.

See docs/sae.md. Everything here reads the store (never writes it) and imports no torch.
"""
