"""The control server's store, by concern: the directory (users, digests, devices, shares), the
write-behind state (bindings, sessions, history) and the admin accounts. Each part is a class over
a shared connection: SQLite in the data directory (`Database`), or PostgreSQL for a cluster
(`PostgresDatabase`); `open_database` picks one, and the parts run the same SQL on both."""

from .admins import ROLES, AdminRow, AdminStore, TokenRow
from .database import DB_NAME, Database
from .directory import DeviceRow, DirectoryStore, ShareRow, UserRow
from .errors import NameTaken, StoreError, UnknownName
from .opening import Store, open_database
from .postgres import PostgresDatabase, StoreUnavailable, is_store_url
from .names import DEFAULT_DEVICE, check_device_name, check_user_name, split_device
from .secret import SECRET_NAME, nonce_secret
from .state import HistoryQuery, StateStore

__all__ = [
    "DB_NAME", "DEFAULT_DEVICE", "ROLES", "SECRET_NAME", "AdminRow", "AdminStore", "Database",
    "DeviceRow", "DirectoryStore", "HistoryQuery", "NameTaken", "PostgresDatabase", "ShareRow",
    "StateStore", "Store", "StoreError", "StoreUnavailable", "TokenRow", "UnknownName", "UserRow",
    "check_device_name", "check_user_name", "is_store_url", "nonce_secret", "open_database",
    "split_device",
]
