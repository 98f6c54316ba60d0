"""The review workbench: a FastAPI app (``create_app``) serving the review API and its pages."""
