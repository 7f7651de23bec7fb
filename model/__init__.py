"""d2l's ResNet-18 for Fashion-MNIST. The commands (train, evaluate, calibrate, export, summary)
sit here; the network, the data, the images and the training pieces each have a package below.
"""
