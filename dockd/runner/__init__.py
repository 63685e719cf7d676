"""What drives the Service: sessions, the drop folder, the daemon, its socket.

Above the service and never imported by it or by any stage package
(tests/test_layout.py): session.py (one docking), batch.py + dropfolder.py
(card-reader imports), slots.py + docking.py + daemon.py (`dockd run`),
api.py (the daemon's socket), operations.py (the changes a person may ask for).
"""
