"""The control server's SQLite store, one file in the data directory, by concern: the directory
(users, digests, devices, shares), the write-behind state (bindings, sessions, history) and the
admin accounts. Each part is a class over a shared `Database` connection."""

from .admins import ROLES, AdminRow, AdminStore, TokenRow
from .database import DB_NAME, Database
from .directory import DeviceRow, DirectoryStore, ShareRow, UserRow
from .errors import NameTaken, StoreError, UnknownName
from .names import DEFAULT_DEVICE, check_device_name, check_user_name, split_device
from .secret import SECRET_NAME, nonce_secret
from .state import HistoryQuery, StateStore

__all__ = [
    "DB_NAME", "DEFAULT_DEVICE", "ROLES", "SECRET_NAME", "AdminRow", "AdminStore", "Database",
    "DeviceRow", "DirectoryStore", "HistoryQuery", "NameTaken", "ShareRow", "StateStore",
    "StoreError", "TokenRow", "UnknownName", "UserRow", "check_device_name", "check_user_name",
    "nonce_secret", "split_device",
]
