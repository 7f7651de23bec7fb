"""Wire formats in and out, no FastAPI: multipart bodies, the Open Inference Protocol's JSON and
binary tensors, and the pydantic schemas of every answer.
"""
