"""SRU: the server (``server.py``) and the records it serves (``records.py``)."""
