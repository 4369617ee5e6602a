"""Users, devices and shares held in memory for the hot path, and who may sync with whom."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.sip.digest import Algorithm

from .device_set import DeviceSet
from .store import DirectoryStore


@dataclass(frozen=True, slots=True)
class Account:
    ha1_md5: str
    ha1_sha256: str
    disabled: bool
    # The user's name as loaded, so that every binding of the user holds this one string.
    name: str = ""


class Directory:
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.devices = DeviceSet()
        self.disabled_devices: set[tuple[str, str]] = set()
        # (owner, device) -> users the owner shared that device with
        self.shares: dict[tuple[str, str], set[str]] = {}

    @classmethod
    def load(cls, store: DirectoryStore) -> Directory:
        directory = cls()
        directory.accounts = {
            name: Account(md5, sha, bool(disabled), name)
            for name, md5, sha, disabled in store.credentials()
        }
        rows = store.devices()
        directory.devices = DeviceSet((d.user, d.name) for d in rows)
        directory.disabled_devices = {(d.user, d.name) for d in rows if d.disabled}
        for share in store.shares():
            directory.shares.setdefault((share.owner, share.device), set()).add(share.grantee)
        return directory

    def ha1(self, user: str, algorithm: Algorithm) -> str | None:
        account = self.accounts.get(user)
        if account is None:
            return None
        return account.ha1_md5 if algorithm is Algorithm.MD5 else account.ha1_sha256

    def name_of(self, user: str) -> str:
        """The loaded string of a known user's name (equal to `user`), else `user` itself."""
        account = self.accounts.get(user)
        return account.name if account is not None and account.name == user else user

    def is_disabled(self, user: str) -> bool:
        account = self.accounts.get(user)
        return account is None or account.disabled

    def may_reach(self, caller: str, owner: str, device: str) -> bool:
        """A device syncs with its owner's devices, and with others only where shared."""
        return caller == owner or caller in self.shares.get((owner, device), ())
