"""Thin HTTP handlers, one module per resource: parse -> call a service -> shape the response.

Each function's name is the snake_case of its operationId in openapi/odconnect.yaml.
"""
