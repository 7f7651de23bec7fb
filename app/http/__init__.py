"""The HTTP edge: the app factory and lifespan, services reached through one dependency, the API
key and headers, error answers, request metrics, the OpenAPI document and the routes by resource.
"""
