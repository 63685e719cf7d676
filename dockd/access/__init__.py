"""Who may do what (R6): identities, roles, requests and approvals, custody.

Pure values and rules (roles, the permission table, the request rules, the
custody report) with the socket's peer credentials at the edge
(identity.py). The Service's access room (service/access.py) writes.
"""
