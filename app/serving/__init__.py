"""From uploaded bytes to probabilities: the pipeline's stages (decode in threads or a worker
process, admission, the micro-batching engine) and the runners that execute the network.
"""
