"""The network and its checkpoint: d2l's ResNet-18, the served classifier around it, the
checkpoint format (metadata torch-free), layer shapes, exported graphs, saliency and devices.
"""
