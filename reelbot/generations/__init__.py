"""Videos: the request half (service.py) and their job kind (kind.py)."""
