"""The routes by resource: /predict (photos), /v2 (the Open Inference Protocol), /model and
health. Each reads its request through app.protocol and classifies through app.serving.
"""
