"""The worker's web server and the wallboard page it serves."""
