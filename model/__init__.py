"""The d2l ResNet-18 for Fashion-MNIST: network, data, checkpoints, training and evaluation."""
