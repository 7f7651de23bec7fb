"""The data sets: Fashion-MNIST, the labelled photos, the renderings of Fashion-MNIST as photos
and the synthetic non-garments, and their caches on disk.
"""
