"""The Status codes of the SyncML-like protocol, as in SyncML 1.2, and what each means here."""

OK = 200
ADDED = 201
CALLER_WON = 208
DUPLICATED = 209  # keep-both: the losing version was kept as a new item
BAD_REQUEST = 400
FORBIDDEN = 403
NOT_FOUND = 404
NOT_ALLOWED = 405
CONCURRENT_EDIT = 409  # the receiver's item changed during the sync: offered again next time
CALLEE_WON = 419
SERVER_ERROR = 500
REFRESH_REQUIRED = 508  # anchors do not match: slow sync
