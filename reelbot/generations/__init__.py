"""Videos: the request half (reelbot/service.py) and their job kind."""
