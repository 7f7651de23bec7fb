"""The FastAPI service around the model package."""
